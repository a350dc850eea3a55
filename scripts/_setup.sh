# Shared by scripts/demo and scripts/test: system packages via apt-get when missing, then a
# virtual environment in .venv with agentdesk installed editable. Safe to run again.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_debian_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

# A Debian package's files unpacked into DIR (relative to the repository) without installing it,
# for one whose package conflicts with another the tests need; skipped when DIR/CHECK exists.
ensure_unpacked_package() {
  local package="$1" dir="$2" check="$3"
  if [ -e "$dir/$check" ]; then return 0; fi
  local download
  download="$(mktemp -d)"
  chmod 755 "$download"
  echo "unpacking Debian package $package into $dir" >&2
  if ! (cd "$download" && apt-get download -qq "$package" >&2 2>/dev/null); then
    as_root apt-get update -qq
    (cd "$download" && apt-get download -qq "$package" >&2)
  fi
  mkdir -p "$dir"
  dpkg-deb -x "$download"/"$package"_*.deb "$dir"
  rm -rf "$download"
}

python_ok() {
  command -v python3 >/dev/null && python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'
}

ensure_venv() {
  local extras="$1"
  if ! python_ok; then
    echo "agentdesk needs Python 3.11 or newer as python3" >&2
    exit 1
  fi
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    ensure_debian_packages python3-venv
  fi
  # What is installed is stamped with the hash of pyproject.toml and the extras: the install is
  # editable (code changes need none), so only a change of dependencies or entry points needs pip.
  local stamp=.venv/.agentdesk-installed wanted
  wanted="$(cat pyproject.toml | sha256sum | cut -d' ' -f1) ${extras}"
  if [ -x .venv/bin/python ] && [ -f "$stamp" ] && grep -qxF -- "$wanted" "$stamp"; then
    compile_checkout
    return 0
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "first run: installing agentdesk and its dependencies into .venv (about a minute) …" >&2
    python3 -m venv .venv
  else
    echo "installing agentdesk${extras} into .venv (pyproject.toml changed) …" >&2
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" >&2
  echo "$wanted" >> "$stamp"
  compile_checkout
}

# Byte-compile the checkout, as pip does for an installed wheel (pipx, pip install .) but not for an
# editable install: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise compile every module
# again in every process, a large part of a command's start. Only changed files are compiled again.
compile_checkout() {
  .venv/bin/python -m compileall -q agentdesk >/dev/null
}
