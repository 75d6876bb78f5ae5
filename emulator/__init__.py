"""emulator package."""

if __name__ != "smlocal.emulator":  # reached as the checkout's bare top-level folder
    raise ImportError(
        f"import smlocal.emulator, not {__name__}: emulator/ is installed as smlocal.emulator"
    )
