"""Values the web app makes once and keeps (galleries, datasets, examples, figures): per key, never one global lock.

Each missing key is made in its own thread, so a slow one (a model whose features must be encoded) never
holds up a request for another key; requests for the same key share the one making. A request may wait a
bounded time and get :class:`Loading` instead of blocking, and show a page that refreshes itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # the builtin one only from Python 3.11 on


class Loading(Exception):
    """A value is still being made after the request's wait; ``what`` says which."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class Kept:
    """A store of the ``limit`` most recently used values, each made once by ``make()`` in its own thread."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()  # guards the two dicts only: making a value never holds it
        self._done: OrderedDict = OrderedDict()
        self._making: dict = {}

    def __len__(self) -> int:
        return len(self._done)

    def ready(self, key) -> bool:
        with self._lock:
            return key in self._done

    def get(self, key, make: Callable, wait: float | None = None, what: str = "this page"):
        """``make()``'s value for ``key`` (made once, then kept). ``wait``: seconds to wait for it before raising
        :class:`Loading` (the making goes on in the background); None waits as long as it takes. An exception of
        ``make`` is raised to every waiting request and the key is made afresh next time."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            future = self._making.get(key)
            if future is None:
                future = self._making[key] = Future()
                threading.Thread(target=self._make, args=(key, make, future), daemon=True, name=f"make {what}").start()
        try:
            return future.result(timeout=wait)
        except FutureTimeout:
            raise Loading(what) from None

    def get_many(self, keys: list, make_many: Callable[[list], list], what: str = "these values") -> list:
        """The value of each of ``keys``: the kept ones as they are, the missing ones made together by
        ``make_many(missing keys)`` (their values, in order) in the calling thread, then kept; one dropped
        meanwhile is made again alone."""
        with self._lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self._done]
        made = dict(zip(missing, make_many(missing))) if missing else {}
        return [self.get(k, lambda k=k: made[k] if k in made else make_many([k])[0], None, what) for k in keys]

    def _make(self, key, make: Callable, future: Future) -> None:
        try:
            value = make()
        except BaseException as e:  # handed to the requests that wait; the thread itself ends quietly
            with self._lock:
                self._making.pop(key, None)
            future.set_exception(e)
            return
        with self._lock:
            self._done[key] = value
            while len(self._done) > self.limit:
                self._done.popitem(last=False)
            self._making.pop(key, None)
        future.set_result(value)
