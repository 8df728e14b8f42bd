"""interrupts.held: a stop inside the block waits for its end, then takes the handler it would have taken."""

from __future__ import annotations

import os
import signal

import pytest

from inspector.interrupts import Terminated, held, sigterm_as_interrupt


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_stop_inside_held_is_delivered_when_the_block_ends_not_inside_it(signum, raised):
    done = []
    with sigterm_as_interrupt() as record:
        with pytest.raises(raised):
            with held():
                os.kill(os.getpid(), signum)  # delivered to the Python handler before the next bytecode
                done.append("the rest of the block ran")
            done.append("after the block")  # not reached: the held stop is raised as the block ends
    assert done == ["the rest of the block ran"]
    assert record.signum == signum


def test_without_a_stop_held_changes_nothing_and_puts_the_handlers_back():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with held():
        pass
    assert {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} == before
