"""Test-run settings for the tests and the package's doctests."""
import os
import shutil
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("ANVIL_LLVM_VERIFY", "1")      # graphs and schedules checked before codegen

# Each run compiles into a new, empty disk cache (removed at the end), so no test depends on what
# an earlier run or the user's own work left in ~/.cache/anvil_llvm. Set
# ANVIL_LLVM_TEST_KEEP_CACHE=1 to use the usual cache instead (faster reruns).
_RUN_CACHE = None
if not os.environ.get("ANVIL_LLVM_TEST_KEEP_CACHE"):
    _RUN_CACHE = os.environ["ANVIL_LLVM_CACHE_DIR"] = tempfile.mkdtemp(
        prefix="anvil-llvm-test-cache-")


def pytest_sessionfinish(session, exitstatus):
    if _RUN_CACHE is not None:
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)
