"""The fonts typeset digits and numbers are made in (synth.py), split by family, strictly:
`TRAIN_FONTS` may be used to train, `VALIDATION_FONTS` only to choose a recipe on (how well it
reads faces it never saw), `EVAL_FONTS` only to evaluate. None uses fonts-urw-base35,
fonts-texgyre, fonts-liberation, fonts-freefont-ttf, fonts-crosextra-* or fonts-lato: they are
kept for checks from outside the project. scripts/setup_env.sh installs the packages.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

from mnist_paddle.errors import UserError

DEBIAN_FONTS = Path("/usr/share/fonts")
# family -> file name patterns under /usr/share/fonts (Debian package in the comment)
TRAIN_FONTS = {
    "Noto Sans": ["NotoSans-*.ttf"],  # fonts-noto-core
    "Noto Serif": ["NotoSerif-*.ttf"],  # fonts-noto-core
    "Open Sans": ["OpenSans-*.ttf"],  # fonts-open-sans
    "Roboto": ["Roboto-*.ttf", "RobotoCondensed-*.ttf"],  # fonts-roboto-unhinted
    "Linux Libertine": ["LinLibertine_*.otf", "LinBiolinum_*.otf"],  # fonts-linuxlibertine
    "Cantarell": ["Cantarell-*.otf"],  # fonts-cantarell
    "EB Garamond": ["EBGaramond*.otf"],  # fonts-ebgaramond
    "Fira Code": ["FiraCode-*.ttf"],  # fonts-firacode
    # a spread of sans, serif, slab, monospaced and rounded faces, so that a face no training
    # font resembles is rarer (docs/numbers.md, "Printed numbers and more fonts")
    "Cabin": ["Cabin-*.otf"],  # fonts-cabin
    "Karla": ["Karla-*.otf"],  # fonts-karla
    "Oxygen": ["Oxygen-Sans*.ttf", "OxygenMono-*.ttf"],  # fonts-oxygen
    "Manrope": ["Manrope-*.ttf"],  # fonts-manrope
    "League Spartan": ["LeagueSpartan-*.otf"],  # fonts-league-spartan
    "Clear Sans": ["ClearSans-*.ttf"],  # fonts-clear-sans
    "Cardo": ["Cardo*.ttf"],  # fonts-cardo
    "Old Standard": ["OldStandard-*.ttf"],  # fonts-oldstandard
    "Roboto Slab": ["RobotoSlab-*.otf"],  # fonts-roboto-slab
    "Courier Prime": ["Courier Prime*.otf"],  # fonts-courier-prime
    "Inconsolata": ["Inconsolata.otf"],  # fonts-inconsolata
    "mononoki": ["mononoki-*.ttf"],  # fonts-mononoki
    "Noto Mono": ["NotoMono-*.ttf", "NotoSansMono-*.ttf"],  # fonts-noto-mono
    "Fantasque Sans Mono": ["Normal/TTF/FantasqueSansMono-*.ttf"],  # fonts-fantasque-sans
    "Comfortaa": ["Comfortaa-*.ttf"],  # fonts-comfortaa
    "Dosis": ["Dosis-*.otf"],  # fonts-dosis
}
# one family of each kind held out of training: what a recipe is chosen on for printed numbers
VALIDATION_FONTS = {
    "B612": ["B612-*.otf", "B612Mono-*.otf"],  # fonts-b612
    "Go": ["Go-*.ttf"],  # fonts-go
    "Vollkorn": ["Vollkorn-*.ttf"],  # fonts-vollkorn
    "Anonymous Pro": ["Anonymous Pro*.ttf"],  # fonts-anonymous-pro
    "Quicksand": ["Quicksand-*.ttf"],  # fonts-quicksand
}
EVAL_FONTS = {
    "Gentium": ["Gentium*.ttf"],  # fonts-sil-gentium
    "Inter": ["Inter-*.otf", "InterDisplay-*.otf"],  # fonts-inter
    "Hack": ["Hack-*.ttf"],  # fonts-hack
    "JetBrains Mono": ["JetBrainsMono-*.ttf"],  # fonts-jetbrains-mono
    "Comic Neue": ["ComicNeue-*.otf"],  # fonts-comic-neue
}
# The fonts in matplotlib's own folder that have ordinary digits (the STIX size variants and
# the TeX symbol fonts do not): the `printed` evaluation group, and training fonts too.
MATPLOTLIB_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmss10", "cmtt10")
# Linux Libertine's keyboard, initials and display cuts have no ordinary digits.
SKIP = ("LinBiolinum_K", "LinLibertine_I.", "LinLibertine_DR", "Keyboard", "Initials")


def matplotlib_fonts() -> list[Path]:
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(
        p
        for p in folder.glob("*.ttf")
        if p.stem.startswith(MATPLOTLIB_PREFIXES) and "Display" not in p.stem
    )


def debian_fonts(families: dict[str, list[str]]) -> list[Path]:
    """The font files of `families`; a `UserError` naming the package for a family not found."""
    files = []
    for family, patterns in families.items():
        found = sorted(
            p
            for pattern in patterns
            for p in DEBIAN_FONTS.rglob(pattern)
            if not any(s in p.name for s in SKIP)
        )
        if not found:
            raise UserError(
                f"font family {family} not found under {DEBIAN_FONTS} "
                "(scripts/setup_env.sh installs the font packages)"
            )
        files += found
    return files


@functools.cache
def training_fonts() -> tuple[Path, ...]:
    return tuple(matplotlib_fonts() + debian_fonts(TRAIN_FONTS))
