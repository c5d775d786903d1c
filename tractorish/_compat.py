"""What differs between the supported Pythons (3.10 to 3.13)."""
import sys

if sys.version_info >= (3, 11):
    BaseExceptionGroup = BaseExceptionGroup  # noqa: A001 - re-export the builtin
    ExceptionGroup = ExceptionGroup  # noqa: A001
else:  # pragma: no cover - exercised on 3.10 only
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

__all__ = ['BaseExceptionGroup', 'ExceptionGroup']
