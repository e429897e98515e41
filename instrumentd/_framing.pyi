from collections.abc import Callable

def encode_packet(
    packet_type: int, payload: bytes, seconds: int, fraction: int, /
) -> bytes | None: ...
def ntp_of(
    time: float, fallback: Callable[[float], tuple[int, int]], /
) -> tuple[int, int]: ...

class NtpClock:
    def __init__(
        self,
        seconds: Callable[[], float],
        fallback: Callable[[float], tuple[int, int]],
    ) -> None: ...
    def __call__(self) -> tuple[int, int]: ...
