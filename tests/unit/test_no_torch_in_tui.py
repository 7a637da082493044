"""The terminal UI process never imports torch: not on import, not while it shows every screen."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_importing_the_app_and_its_cli_does_not_import_torch(tmp_path: Path) -> None:
    result = run_python(
        """
        import sys
        import rankbias_tui.tui.app, rankbias_tui.cli.attach, rankbias_tui.cli, rankbias_tui.scheduler.daemon
        import rankbias_tui.scheduler.client
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_driving_every_screen_does_not_import_torch(tmp_path: Path) -> None:
    result = run_python(
        f"""
        import asyncio, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from tests.support.tui_store import make_app, make_store

        async def main():
            make_store(Path("runs")).close()
            app = make_app(Path("runs"))
            async with app.run_test(size=(80, 24)) as pilot:
                for keys in (["enter", "2", "left", "3", "escape"], ["v", "g", "escape"], ["l", "escape"],
                             ["slash", "d", "o", "n", "e", "enter", "s", "e"], ["question_mark", "escape"]):
                    await pilot.press(*keys)
                    await pilot.pause()
                await app.workers.wait_for_complete()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
