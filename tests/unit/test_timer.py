"""Timer: one thread delivers messages later, in due order; cancel, stop and dead targets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka
from waiting import poll_until

from actors._runtime.timer import Timer

if TYPE_CHECKING:
    from conftest import Recording

WAIT_S = 2.0


def test_messages_are_delivered_in_due_order_not_schedule_order(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    target = recorder()
    timer.schedule(0.15, target.ref, "third")
    timer.schedule(0.05, target.ref, "first")
    timer.schedule(0.10, target.ref, "second")

    assert target.wait_for(lambda m: True, count=3) == ["first", "second", "third"]


def test_messages_due_together_keep_their_schedule_order(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    target = recorder()
    for i in range(20):
        timer.schedule(0.0, target.ref, i)

    assert target.wait_for(lambda m: True, count=20) == list(range(20))


def test_nothing_is_delivered_before_it_is_due(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    target = recorder()
    scheduled_at = time.monotonic()
    timer.schedule(0.1, target.ref, "later")

    target.wait_for(lambda m: m == "later")
    assert time.monotonic() - scheduled_at >= 0.1


def test_a_negative_delay_delivers_at_once(timer: Timer, recorder: Callable[[], Recording]) -> None:
    target = recorder()
    timer.schedule(-5.0, target.ref, "now")
    assert target.wait_for(lambda m: m == "now") == ["now"]


def test_a_cancelled_message_is_never_delivered(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    target = recorder()
    cancelled = timer.schedule(0.05, target.ref, "cancelled")
    timer.schedule(0.02, target.ref, "kept")
    timer.schedule(0.10, target.ref, "sentinel")  # due after the cancelled one
    cancelled.cancel()

    target.wait_for(lambda m: m == "sentinel")
    target.barrier()
    assert target.messages == ["kept", "sentinel"]


def test_stop_is_bounded_and_drops_pending_deliveries(
    recorder: Callable[[], Recording],
) -> None:
    target = recorder()
    timer = Timer("stop-test")
    timer.schedule(60.0, target.ref, "far future")
    assert timer.alive

    started = time.monotonic()
    timer.stop(timeout_s=WAIT_S)
    assert time.monotonic() - started < 1.0
    assert not timer.alive
    assert target.messages == []


def test_stop_from_the_timer_thread_itself_does_not_deadlock(
    recorder: Callable[[], Recording],
) -> None:
    timer = Timer("self-stop")
    stopped = threading.Event()

    class StopsTheTimer:
        def tell(self, message: Any) -> None:
            timer.stop(timeout_s=WAIT_S)
            stopped.set()

    timer.schedule(0.0, StopsTheTimer(), "stop")
    assert stopped.wait(WAIT_S)
    poll_until(lambda: not timer.alive, WAIT_S, "the timer thread to end")


def test_delivery_to_a_stopped_actor_is_swallowed_and_the_timer_goes_on(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    gone, alive = recorder(), recorder()
    gone.ref.stop(timeout=WAIT_S)

    class Raises:
        def tell(self, message: Any) -> None:
            raise RuntimeError("broken target")

    timer.schedule(0.0, gone.ref, "to the dead")
    timer.schedule(0.0, Raises(), "to a broken target")
    timer.schedule(0.02, alive.ref, "to the living")

    assert alive.wait_for(lambda m: True) == ["to the living"]
    assert timer.alive
    assert not gone.ref.is_alive()


def test_schedule_is_safe_from_many_threads(
    timer: Timer, recorder: Callable[[], Recording]
) -> None:
    target = recorder()
    start = threading.Barrier(8, timeout=WAIT_S)

    def schedule_some(n: int) -> None:
        start.wait()
        for i in range(25):
            timer.schedule(0.001 * (i % 3), target.ref, (n, i))

    threads = [threading.Thread(target=schedule_some, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)

    received = target.wait_for(lambda m: True, count=200)
    assert sorted(received) == sorted((n, i) for n in range(8) for i in range(25))


def test_a_timer_can_deliver_to_a_real_actor_that_replies(timer: Timer) -> None:
    got = pykka.ThreadingFuture[str]()

    class Echo(pykka.ThreadingActor):
        use_daemon_thread = True

        def on_receive(self, message: Any) -> None:
            got.set(message)

    timer.schedule(0.01, Echo.start(), "hello")
    assert got.get(timeout=WAIT_S) == "hello"
