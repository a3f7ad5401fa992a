"""sagactl: define, drive and operate sagas."""

__version__ = "0.1.0"
