#!/usr/bin/env bash
# Create .venv (once) and install the pinned requirements and the package (editable) into it;
# install the Debian font packages the typeset training digits and the evaluation sets use
# (scripts/run_tests.sh adds what the tests use).
# Sourced by the other scripts; afterwards `python` is the project's interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
# mnist_paddle/train/fonts.py: training fonts (noto-core ... dosis), validation fonts (b612 ...
# quicksand), evaluation fonts (the rest)
FONT_PACKAGES="fonts-noto-core fonts-open-sans fonts-roboto-unhinted fonts-linuxlibertine
  fonts-cantarell fonts-ebgaramond fonts-firacode fonts-cabin fonts-karla fonts-oxygen
  fonts-manrope fonts-league-spartan fonts-clear-sans fonts-cardo fonts-oldstandard
  fonts-roboto-slab fonts-courier-prime fonts-inconsolata fonts-mononoki fonts-noto-mono
  fonts-fantasque-sans fonts-comfortaa fonts-dosis fonts-b612 fonts-go fonts-vollkorn
  fonts-anonymous-pro fonts-quicksand fonts-sil-gentium fonts-inter fonts-hack
  fonts-jetbrains-mono fonts-comic-neue"
# apt_install PACKAGE ...: the Debian packages not yet installed, with apt as root; otherwise (or
# when apt fails) a warning, and what needs them says so when it runs
apt_install() {
    local missing="" pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    [ -z "$missing" ] && return 0
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "== installing (apt):$missing"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $missing >/dev/null; } \
            || echo "warning: could not install$missing"
    else
        echo "warning: Debian packages missing:$missing (install them with apt as root)"
    fi
}
# shellcheck disable=SC2086
apt_install $FONT_PACKAGES
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
if ! cmp -s requirements.txt .venv/.installed-requirements 2>/dev/null; then
    echo "== installing requirements.txt (first time: a few minutes, Paddle is large)"
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -r requirements.txt
    cp requirements.txt .venv/.installed-requirements
fi
