"""Wait until the app answers /readyz with 200 on the host's port, then print /version.

Run by tasks/release.yml on the host, in the round trip that would otherwise be two `uri`
tasks: `python3 -c "$(cat app_ready.py)" PORT TRIES DELAY_S`. Exits 1 with the last
answer on stderr when the two never both say 200.
"""

import sys
import time
import urllib.error
import urllib.request


def answer(url: str) -> tuple[int, str]:
    try:
        # Only ever an http:// URL built from the port argument.
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except OSError as error:
        return 0, str(error)


def main(port: str, tries: str, delay_s: str) -> int:
    base = f"http://127.0.0.1:{port}"
    for attempt in range(int(tries)):
        if attempt:
            time.sleep(float(delay_s))
        url = f"{base}/readyz"
        status, body = answer(url)
        if status == 200:
            url = f"{base}/version"
            status, body = answer(url)
            if status == 200:
                print(body)
                return 0
    print(
        f"{url} did not answer 200 after {tries} tries: {status or 'no answer'} {body[:300]}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
