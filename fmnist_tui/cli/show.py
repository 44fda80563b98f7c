"""`fmnist-tui show RUN` (a run's record and how it was made) and `run --like RUN` (its config, again)."""

from __future__ import annotations

from pathlib import Path

from fmnist_tui.cards import card_lines, differences, read_cards
from fmnist_tui.cli.inflight import find_run
from fmnist_tui.cli.output import print_json, warn
from fmnist_tui.config import make_config, with_overrides
from fmnist_tui.format import pct, printable, value_text
from fmnist_tui.runs import RunStoreError


def cmd_show(args) -> int:
    info = find_run(args.runs_dir, args.run)
    cards = read_cards(info.path)
    if args.json:
        print_json({"run": info.name, "status": info.status, "summary": info.summary, "config": info.config,
                    "cards": cards})  # fmt: skip
        return 0
    print(f"{info.name}  {info.status}  best val {pct(info.get('best_val_acc'))}  test acc {pct(info.get('test_acc'))}")
    print(f"folder {printable(info.path)}")
    if not cards:
        print("\nno card.json: this run was made before runs recorded how they were made")
    for n, card in enumerate(cards):
        print(f"\n{'made' if n == 0 else f'resume {n}'} (at step {printable(card.get('step', 0))}):")
        for what, value in card_lines(card):
            print(f"  {what:<16} {value}")
    print("\nconfig:")
    for key, value in info.config.items():
        print(f"  {printable(key):<16} {value_text(value)}")
    return 0


def like_config(args, overrides: dict):
    """`run --like RUN`: that run's config with the --set values on it, and a warning for each
    version or data file that is not what the run was made with."""
    info = find_run(args.runs_dir, args.like)
    if not info.config:
        raise RunStoreError(f"{printable(info.path)}: no readable config.toml to start a run like it")
    config = with_overrides(make_config(info.config, f"{printable(info.path)}/config.toml"), overrides)
    cards = read_cards(info.path)
    if not cards:
        warn(f"run {info.name} has no card.json: its versions and data are not on record, nothing to compare")
        return config
    from fmnist_tui import paths
    from fmnist_tui.engine.card import data_files, versions

    folder = Path(args.data_dir or config.data_dir or paths.data_dir())
    for line in differences(cards[0], {"versions": versions(), "data": data_files(config, folder)}):
        warn(f"run --like {info.name}: {line}")
    return config
