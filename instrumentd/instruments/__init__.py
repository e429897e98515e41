"""
Instruments instrumentd knows, one package per maker and model
(``instrumentd.instruments.<maker>.<model>``), each with its driver, its
simulator and its sample data.
"""
