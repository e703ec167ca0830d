"""Exit non-zero unless the kernel variables that .ci/run sets for its second numerics run took effect.

OPENBLAS_CORETYPE: every OpenBLAS that numpy and scipy load reports that core to threadpoolctl.
MKL_CBWR: torch's statically linked MKL reports the Conditional Numerical Reproducibility branch it runs
(``mkl_cbwr_get``; in mkl.h MKL_CBWR_COMPATIBLE = 3, the SSE2 code path that gives the same bits on any CPU).
ATEN_CPU_CAPABILITY: torch's own vectorised kernels report the capability they dispatch to.
"""

import ctypes
import os
import sys

MKL_CBWR_CODES = {"COMPATIBLE": 3}


def openblas_problems() -> list[str]:
    import numpy as np
    import scipy.linalg
    from threadpoolctl import threadpool_info

    want = os.environ.get("OPENBLAS_CORETYPE")
    np.ones((8, 8)) @ np.ones((8, 8))
    scipy.linalg.cholesky(np.eye(3))
    cores = [(i["filepath"], i.get("architecture")) for i in threadpool_info() if i["internal_api"] == "openblas"]
    print("OpenBLAS:", cores or "none loaded")
    if not want:
        return []
    if not cores:
        return ["OPENBLAS_CORETYPE is set but no OpenBLAS is loaded"]
    return [
        f"{path} runs {core}, not OPENBLAS_CORETYPE={want}"
        for path, core in cores
        if (core or "").lower() != want.lower()
    ]


def torch_problems() -> list[str]:
    import torch

    torch.ones(8, 8) @ torch.ones(8, 8)
    capability = torch.backends.cpu.get_cpu_capability()
    problems = []
    want = os.environ.get("ATEN_CPU_CAPABILITY")
    if want and capability.lower() != want.lower():
        problems.append(f"torch dispatches to {capability}, not ATEN_CPU_CAPABILITY={want}")
    cbwr = None
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        cbwr = lib.mkl_serv_cbwr_get(1)  # 1 = MKL_CBWR_BRANCH
    except (OSError, AttributeError):
        pass
    print(f"torch: capability {capability}, MKL CNR branch {cbwr}")
    want = os.environ.get("MKL_CBWR")
    if want and cbwr is not None and cbwr != MKL_CBWR_CODES.get(want.upper()):  # None: this torch has no MKL
        problems.append(f"torch's MKL runs CNR branch {cbwr}, not MKL_CBWR={want}")
    return problems


if __name__ == "__main__":
    problems = openblas_problems() + torch_problems()
    for line in problems:
        print("kernel variable without effect:", line, file=sys.stderr)
    sys.exit(1 if problems else 0)
