"""pycuda's primary context: pushed on the constructing thread, popped and released by close().

pycuda is source-only on PyPI (it needs nvcc), so this stand-in mirrors the
part of ``pycuda.driver`` the wrapper uses: ``init``, ``Device.count``,
``Device(i).retain_primary_context()``, ``Context.push/pop/detach`` on a
per-thread context stack (pycuda contexts are per thread).
"""

from __future__ import annotations

import sys
import threading
import types

import pytest

from inspector.backends.cuda import open_cuda
from inspector.errors import BackendError


def make_fake_pycuda(fail_pop=False):
    drv = types.ModuleType("pycuda.driver")
    local = threading.local()
    drv.released = []

    def stack():
        local.__dict__.setdefault("stack", [])
        return local.stack

    class Context:
        def push(self):
            stack().append(self)

        @staticmethod
        def pop():
            if fail_pop or not stack():
                raise RuntimeError("cuCtxPopCurrent failed: invalid device context")
            stack().pop()

        def detach(self):
            drv.released.append(self)

    class Device:
        def __init__(self, index):
            self.index = index

        @staticmethod
        def count():
            return 1

        def retain_primary_context(self):
            return Context()

        def compute_capability(self):
            return (8, 6)

        def name(self):
            return "Fake GPU"

    drv.init, drv.Device, drv.Context, drv.stack = (lambda flags=0: None), Device, Context, stack
    return drv


@pytest.fixture()
def pycuda(monkeypatch):
    def install(**kwargs):
        drv = make_fake_pycuda(**kwargs)
        package = types.ModuleType("pycuda")
        package.driver = drv
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
        return drv
    return install


def test_close_pops_and_releases_the_primary_context(pycuda):
    drv = pycuda()
    cuda = open_cuda("pycuda")
    assert len(drv.stack()) == 1 and cuda.device_info().compute_capability == "8.6"
    cuda.close()
    assert drv.stack() == [] and len(drv.released) == 1
    cuda.close()  # idempotent
    assert len(drv.released) == 1


def test_release_happens_even_when_the_pop_fails(pycuda):
    drv = pycuda(fail_pop=True)
    cuda = open_cuda("pycuda")
    with pytest.raises(BackendError, match="pycuda: cuCtxPopCurrent failed: cuCtxPopCurrent failed: invalid device"):
        cuda.close()
    assert len(drv.released) == 1


def test_close_from_another_thread_is_refused_with_one_line(pycuda):
    drv = pycuda()
    cuda = open_cuda("pycuda")
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_close(cuda)))
    thread.start()
    thread.join()
    assert "called from a thread that does not own the CUDA context" in str(errors[0])
    assert len(drv.stack()) == 1  # still pushed on the owner thread, which can still close it
    cuda.close()
    assert drv.stack() == [] and len(drv.released) == 1


def _close(cuda):
    try:
        cuda.close()
    except BackendError as exc:
        return exc
    return None
