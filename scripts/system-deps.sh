#!/usr/bin/env bash
# Install the system packages agentfn needs, from Debian's repositories, when they are missing:
#   redis-server, redis-tools (always); nodejs, npm (with --node, for the cross-language tests);
#   chromium (with --browser, for the dashboard's browser tests, driven by Playwright).
# As root it runs apt-get; otherwise it prints exactly what to install and fails.
set -euo pipefail

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || packages+=(redis-tools)
for option in "$@"; do
  case "$option" in
    --node)
      command -v node >/dev/null 2>&1 || packages+=(nodejs)
      command -v npm >/dev/null 2>&1 || packages+=(npm)
      ;;
    --browser)
      [ -x /usr/bin/chromium ] || packages+=(chromium)
      ;;
    *) echo "system-deps.sh: unknown option $option" >&2; exit 2 ;;
  esac
done
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "agentfn needs: ${packages[*]}" >&2
  echo "install them with: sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi
echo "installing ${packages[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian's package may start a system redis-server; agentfn never uses it (tests and the demo
# start their own), so it is left alone.
