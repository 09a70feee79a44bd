"""kernels.cpu.threads.apply_defaults sets defaults only where the user set nothing."""

from kernels.cpu import threads


def test_defaults_on_empty_environment():
    env = {}
    got = threads.apply_defaults(env)
    assert env["GOMP_SPINCOUNT"] == threads.SPINCOUNT
    if threads.omp_available():
        assert env["NUMBA_THREADING_LAYER"] == "omp"
    assert got == env


def test_user_settings_win():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "NUMBA_THREADING_LAYER": "workqueue"}
    assert threads.apply_defaults(env) == {}
    assert env == {"OMP_WAIT_POLICY": "ACTIVE", "NUMBA_THREADING_LAYER": "workqueue"}
    env = {"GOMP_SPINCOUNT": "5"}
    threads.apply_defaults(env)
    assert env["GOMP_SPINCOUNT"] == "5" and "OMP_WAIT_POLICY" not in env
