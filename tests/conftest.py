import os
import tempfile

from hypothesis import HealthCheck, settings

# deadline=None: numba JIT compilation lands on random examples.
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# the theorem-threshold disk cache (theory.theorems) goes to a per-session temporary folder, not
# the user's ~/.cache/rmt; a caller's explicit RMT_CACHE_DIR is kept
os.environ.setdefault("RMT_CACHE_DIR", tempfile.mkdtemp(prefix="rmt-test-cache-"))
