"""``python -m pggan COMMAND ...``: the commands under one entry point.

Handy for launchers that take a module, e.g.
``torchrun --nproc_per_node=8 -m pggan train --data ... --resolution 1024``.
"""

import click

from pggan.cli import (
    eval_command,
    explore_command,
    fid_command,
    import_command,
    msssim_command,
    prepare_command,
    sample_command,
    swd_command,
    train_command,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pggan: Progressive Growing of GANs."""


main.add_command(prepare_command, "prepare")
main.add_command(train_command, "train")
main.add_command(sample_command, "sample")
main.add_command(explore_command, "explore")
main.add_command(swd_command, "swd")
main.add_command(import_command, "import")
main.add_command(fid_command, "fid")
main.add_command(msssim_command, "msssim")
main.add_command(eval_command, "eval")

if __name__ == "__main__":
    main()
