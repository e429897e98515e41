"""
Tests for a string parameter's declared form (L{Parameter.form}), as an
instrument's digit-string settings need (RDI C{EX00111}: five binary
digits).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentParameterError
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
)


class FormTests(SynchronousTestCase):
    """
    Checking a value against the form.
    """

    def setUp(self) -> None:
        self.parameters = ParameterDictionary()
        self.parameters.add(
            Parameter(name="EX", type=ParameterType.STRING, form=r"[01]{5}")
        )

    def test_matches(self) -> None:
        """
        A value of the form is accepted as it is.
        """
        self.assertEqual(self.parameters.validate_set({"EX": "00111"}), {"EX": "00111"})

    def test_refused(self) -> None:
        """
        A value not of the form is refused, naming the parameter, the value
        and the form.
        """
        for bad in ("0011", "00112", "001110"):
            error = self.assertRaises(
                InstrumentParameterError, self.parameters.validate_set, {"EX": bad}
            )
            self.assertEqual(error.parameter, "EX")
            self.assertIn(repr(bad), str(error))
            self.assertIn("[01]{5}", str(error))

    def test_defaultChecked(self) -> None:
        """
        A default not of the form is refused when declared.
        """
        self.assertRaises(
            InstrumentParameterError,
            Parameter,
            name="CF",
            type=ParameterType.STRING,
            form=r"[01]{5}",
            default_value="2",
        )
