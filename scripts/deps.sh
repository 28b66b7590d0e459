# Sourced by main.sh and test.sh: makes sure the Debian packages a step
# needs are installed, installing them when we can (root with apt-get), or
# saying exactly which are missing.
# usage: hak_need_packages PKG...   (a package counts as present when dpkg knows it)

hak_need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "hakmem: installing ${missing[*]}" >&2
    if [ ! -f /tmp/.hakmem-apt-updated ]; then
      apt-get update -qq >/dev/null && touch /tmp/.hakmem-apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || {
      echo "hakmem: apt-get could not install: ${missing[*]}" >&2; return 1; }
    return 0
  fi
  echo "hakmem: missing Debian packages: ${missing[*]}" >&2
  echo "hakmem: install them with: sudo apt-get install ${missing[*]}" >&2
  return 1
}

# The packages every build needs, and the allocators the comparisons use.
HAK_BUILD_PACKAGES=(cmake make gcc g++ libc6-dev python3)
HAK_COMPARE_PACKAGES=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4)
