"""The console app: one watcher thread reads the run store, screens show its payloads, actions go to the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App, ScreenStackError, UnknownModeError
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.css.query import NoMatches
from textual.message import Message
from textual.worker import get_current_worker

from cfftui.tui import backend
from cfftui.tui.feed import Overview, RunPayload, StoreFeed, StudyPayload
from cfftui.tui.idle_gc import IdleCollector
from cfftui.tui.live import Clock

if TYPE_CHECKING:
    from cfftui.tui.screens.run import RunScreen

POLL_INTERVAL_S = 0.3
"""The watcher's cycle (≈3 Hz): every cycle tails the runs in view and posts at most one payload."""
PACE_PER_CHANGED_RUN_S = 0.005
"""A payload that changes many rows costs the UI thread a repaint of the whole visible table, so the
watcher waits this long per changed run (200 busy runs: one payload a second) unless a key wakes it."""

KEY_QUIET_S = 0.2
"""After a key press the watcher pauses between runs until the screen has repainted, for at most this
long: its reading holds the GIL, and sharing it would slow the repaint that answers the key."""

GC_TICK_S = 0.25
"""How often the console checks whether a full garbage collection is due (cfftui.tui.idle_gc)."""

ViewRequest = tuple[Any, ...]
"""What the active screen wants: ("overview",), ("study", exp, selected_key) or ("run", exp, id, layer)."""


class ViewChanged(Exception):
    """Raised in the watcher thread to abandon a payload the user has already moved away from."""


class ConsoleCommands(Provider):
    """Every console action, for the command palette (ctrl+p)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app = self.app
        assert isinstance(app, CffApp)
        return app.palette_commands()

    async def discover(self) -> Hits:
        for text, help_text, callback in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


class CffApp(App[int]):
    """cfftui's console: experiments, a live study, a run, results and help, keyboard first."""

    TITLE = "cfftui"
    CSS_PATH = ["app.tcss", *(f"screens/{screen}.tcss"
                              for screen in ("experiments", "study", "run", "results", "modals"))]
    """Every screen's stylesheet is read at start-up: otherwise the first push of each screen reads its
    file and restyles the whole app on the UI thread (a key press that waits on the disk)."""
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+p", "command_palette", "Commands", show=False),
    ]

    @dataclass
    class Polled(Message):
        """The watcher read the store; `payload` is what the active screen asked for."""

        payload: Overview | StudyPayload | RunPayload | None
        names: tuple[str, ...]

    @dataclass
    class ActionFinished(Message):
        """An engine or statistics action ended; `ok` is False when it failed (`text` says why)."""

        action: str
        experiment: str
        ok: bool
        text: str

    @dataclass
    class AnalysisReady(Message):
        experiment: str
        view: backend.AnalysisView | None
        error: str | None

    def __init__(self, study_file: str = "experiments.toml", runs_dir: str = "runs", *,
                 attach: str | None = None, clock: Clock = time.time,
                 poll_interval: float = POLL_INTERVAL_S) -> None:
        super().__init__()
        self.study_file = study_file
        self.runs_dir = runs_dir
        self.attach = attach
        self.clock = clock
        self.poll_interval = poll_interval
        self.feed = StoreFeed(runs_dir, study_file, clock, between_runs=self._between_runs)
        self.view_request: ViewRequest = ("overview",)
        self._building: ViewRequest = self.view_request
        """The request the watcher is answering now."""
        self._quiet_until = 0.0
        """Until this monotonic time the watcher waits between runs (a key is being answered)."""
        self.experiment_names: tuple[str, ...] = ()
        self.headlines: dict[str, tuple[str, str]] = {}
        """Experiment -> (short result for the table, full headline) once its analysis ran."""
        self.analyses: dict[str, backend.AnalysisView] = {}
        self.payloads = 0
        """Payloads applied so far (tests wait on it instead of sleeping)."""
        self._consumed = threading.Event()
        self._consumed.set()
        self._wake = threading.Event()
        self._selection_only = False
        """The last request only moved the selection within the same view."""
        self._headline_pending: set[str] = set()
        self._run_screen: RunScreen | None = None
        self.garbage = IdleCollector()

    # --- lifecycle ------------------------------------------------------------------
    def on_mount(self) -> None:
        from cfftui.tui.screens.experiments import ExperimentsScreen

        self.push_screen(ExperimentsScreen())
        if self.attach:
            self.open_study(self.attach)
        self._watch_store()
        self.garbage.start()
        self.set_interval(GC_TICK_S, self._collect_garbage, name="idle garbage collection")

    def _collect_garbage(self) -> None:
        self.garbage.tick(answering_key=self._quiet_until > time.monotonic())

    def on_unmount(self) -> None:
        self.garbage.stop()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            self.garbage.key_pressed()
            self._quiet_until = time.monotonic() + KEY_QUIET_S
            self.call_after_refresh(self._end_quiet)
        await super().on_event(event)

    def _end_quiet(self) -> None:
        self._quiet_until = 0.0

    def _between_runs(self) -> None:
        """The watcher's pause point: drop work the user moved away from; let a key's repaint have the GIL."""
        while True:
            if self.view_request != self._building:
                raise ViewChanged
            left = self._quiet_until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.005))

    def request_view(self, request: ViewRequest) -> None:
        """Screens say what they show; the watcher answers once the screen has been repainted.

        Waking it only after the refresh keeps its reading (which holds the GIL) from slowing the
        repaint that answers the key press.
        """
        if request != self.view_request:
            self._selection_only = _same_view(request, self.view_request)
            self.view_request = request
            self.call_after_refresh(self._wake.set)

    def _poke(self) -> None:
        """Wake the watcher to read the store now (an action changed it)."""
        self._selection_only = False
        self._wake.set()

    @work(thread=True, exclusive=True, group="watcher", exit_on_error=False, description="tail the run store")
    def _watch_store(self) -> None:
        worker = get_current_worker()
        read_store = True
        while not worker.is_cancelled:
            request = self._building = self.view_request
            try:
                payload = self._payload_for(request, read_store)
            except ViewChanged:
                read_store = not _same_view(request, self.view_request)
                continue
            names = tuple(self.feed.experiment_names())
            # backpressure: wait (at most a cycle) until the UI applied the last payload; never queue up
            if self._consumed.wait(self.poll_interval) and not worker.is_cancelled:
                if request != self.view_request:
                    # the user moved on while this was built: build what they see now
                    read_store = not _same_view(request, self.view_request)
                    continue
                self._consumed.clear()
                self.post_message(self.Polled(payload, names))
            pace = max(self.poll_interval, PACE_PER_CHANGED_RUN_S * getattr(payload, "changed", 0))
            woken = self._wake.wait(pace)
            self._wake.clear()
            # a new selection in the same view is answered from what was read (sparklines of another
            # run): reading the store now would also change every row and cost the UI a full repaint
            read_store = not (woken and self._selection_only)
            self._selection_only = False

    def _payload_for(self, request: ViewRequest,
                     read_store: bool = True) -> Overview | StudyPayload | RunPayload | None:
        kind = request[0]
        if kind == "study":
            return self.feed.study_view(request[1], selected=request[2], read=read_store)
        if kind == "run":
            return self.feed.run_view(request[1], request[2], layer=request[3], read=read_store)
        if kind == "overview":
            return self.feed.overview()
        return None

    def on_cff_app_polled(self, message: Polled) -> None:
        try:
            self.experiment_names = message.names
            screen = self._shown_screen()
            apply = getattr(screen, "apply_payload", None)
            if apply is not None and message.payload is not None and screen is not None and screen.is_mounted:
                try:
                    apply(message.payload)
                except NoMatches:
                    pass  # the screen is still composing or already leaving: the next poll repaints it
            if isinstance(message.payload, Overview):
                for row in message.payload.rows:
                    if row.finished and row.name not in self.headlines and row.name not in self._headline_pending:
                        self._headline_pending.add(row.name)
                        self._analyse(row.name)
            self.payloads += 1
        finally:
            self._consumed.set()

    def _shown_screen(self) -> Any:
        """The active screen, or None once the app is closing (a thread's message can land after that)."""
        try:
            return self.screen
        except (ScreenStackError, UnknownModeError):
            return None

    # --- navigation ---------------------------------------------------------------------
    def open_study(self, experiment: str) -> None:
        from cfftui.tui.screens.study import StudyScreen

        self.push_screen(StudyScreen(experiment))

    def open_run(self, experiment: str, run_id: str, tab: str = "metrics") -> None:
        from cfftui.tui.screens.run import RunScreen

        # one run screen, installed so that leaving it keeps it: composing it anew costs a key press ~100 ms
        screen = self._run_screen
        if screen is None or screen in self.screen_stack:
            screen = RunScreen(experiment, run_id, tab=tab)
            if self._run_screen is None:
                self.install_screen(screen, "run")
                self._run_screen = screen
        else:
            screen.show_run(experiment, run_id, tab=tab)
        self.push_screen(screen)

    def open_results(self, experiment: str) -> None:
        from cfftui.tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen(experiment))

    def action_help(self) -> None:
        from cfftui.tui.screens.modals import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def switch_experiment(self, experiment: str, step: int) -> str | None:
        """The experiment `step` places from `experiment` in the list (wrapping), or None."""
        names = list(self.experiment_names)
        if not names:
            return None
        index = names.index(experiment) if experiment in names else -1
        return names[(index + step) % len(names)]

    # --- actions (engine and statistics run in threads; results come back as messages) ---------
    def start_experiment(self, experiment: str) -> None:
        self._engine_action("start", experiment, backend.start, self.study_file, [experiment], self.runs_dir)

    def retry_failed(self, experiment: str) -> None:
        self._engine_action("retry", experiment, backend.retry_failed, self.runs_dir, experiment)

    def stop_experiment(self, experiment: str) -> None:
        self._confirm(f"Stop every run of {experiment}? Running runs checkpoint and stop; "
                      "start resumes them.",
                      lambda: self._engine_action("stop", experiment, backend.stop, self.runs_dir, experiment))

    def stop_run(self, experiment: str, run_id: str) -> None:
        self._confirm(f"Stop run {run_id} of {experiment}?",
                      lambda: self._engine_action("stop-run", experiment, backend.stop, self.runs_dir,
                                                  experiment, run_id))

    def export_experiment(self, experiment: str) -> None:
        from cfftui.tui.screens.modals import ExportScreen

        def chosen(formats: list[str] | None) -> None:
            if formats:
                self._export(experiment, formats)

        self.push_screen(ExportScreen(experiment), chosen)

    def _confirm(self, question: str, then: Callable[[], None]) -> None:
        from cfftui.tui.screens.modals import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def _engine_action(self, action: str, experiment: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = fn(*args)
        except backend.BackendError as exc:
            self.post_message(self.ActionFinished(action, experiment, False, str(exc)))
            return
        text = {"start": f"started {experiment}", "retry": f"retrying failed runs of {experiment}",
                "stop": f"stopping {experiment}", "stop-run": f"stopping run of {experiment}"}[action]
        if action == "start" and isinstance(result, dict) and result:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in result.items()) + ")"
        self.post_message(self.ActionFinished(action, experiment, True, text))
        self._poke()

    @work(thread=True, group="actions", exit_on_error=False)
    def _export(self, experiment: str, formats: list[str]) -> None:
        try:
            view = self.analyses.get(experiment) or backend.analyse(self.runs_dir, experiment)
            paths = backend.export(view, self.feed.store.results_dir(experiment), formats)
        except backend.BackendError as exc:
            self.post_message(self.ActionFinished("export", experiment, False, str(exc)))
            return
        self.post_message(self.ActionFinished("export", experiment, True,
                                              "wrote " + ", ".join(str(p) for p in paths)))

    @work(thread=True, group="analysis", exit_on_error=False)
    def _analyse(self, experiment: str) -> None:
        try:
            view = backend.analyse(self.runs_dir, experiment)
        except backend.BackendError as exc:
            self.post_message(self.AnalysisReady(experiment, None, str(exc)))
            return
        self.post_message(self.AnalysisReady(experiment, view, None))

    def analyse(self, experiment: str) -> None:
        """Run (again) the analysis of an experiment; AnalysisReady reaches the screens."""
        self._analyse(experiment)

    def on_cff_app_analysis_ready(self, message: AnalysisReady) -> None:
        self._headline_pending.discard(message.experiment)
        if message.view is not None:
            self.analyses[message.experiment] = message.view
            self.headlines[message.experiment] = (message.view.short, message.view.headline)
        else:
            self.headlines[message.experiment] = ("no analysis", f"no analysis: {message.error}")
        handler = getattr(self._shown_screen(), "apply_analysis", None)
        if handler is not None:
            handler(message)
        self._poke()

    def on_cff_app_action_finished(self, message: ActionFinished) -> None:
        self.notify(message.text, title=message.action, severity="information" if message.ok else "error",
                    timeout=6 if message.ok else 12)

    # --- command palette -----------------------------------------------------------------
    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        for name in self.experiment_names:
            commands += [
                (f"Open study {name}", "the live table of its runs", _bind(self.open_study, name)),
                (f"Start or resume {name}", "the supervisor runs it in the background",
                 _bind(self.start_experiment, name)),
                (f"Stop experiment {name}", "asks first", _bind(self.stop_experiment, name)),
                (f"Retry failed runs of {name}", "failed, diverged and lost runs",
                 _bind(self.retry_failed, name)),
                (f"Results of {name}", "analysis tables and strip plot", _bind(self.open_results, name)),
                (f"Export {name}", "choose the formats", _bind(self.export_experiment, name)),
            ]
        screen_commands = getattr(self.screen, "palette_commands", None)
        if screen_commands is not None:
            commands += list(screen_commands())
        commands.append(("Help: key bindings", "every key of every screen", self.action_help))
        return commands


def _same_view(a: ViewRequest, b: ViewRequest) -> bool:
    """Requests that differ only in their last item: the selected row of a study, the block of a run."""
    return bool(a) and a[0] in ("study", "run") and a[:-1] == b[:-1]


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    def call() -> Any:
        return fn(*args)

    return call
