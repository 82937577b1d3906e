"""SDP as the emulator edits its answers: the session part, then one list of lines per m-section."""

from __future__ import annotations


def sections(sdp: str) -> list[list[str]]:
    """The session's lines, then each m-section's, its ``m=`` line first."""
    parts: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts.append([])
        parts[-1].append(line)
    return parts


def mid(section: list[str]) -> str | None:
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)


def attributes(sdp: str, name: str) -> dict[str, list[str]]:
    """The values of ``a=<name>:`` in each m-section that has a mid, by mid."""
    found: dict[str, list[str]] = {}
    for section in sections(sdp)[1:]:
        key = mid(section)
        if key is not None:
            prefix = f"a={name}:"
            found[key] = [line[len(prefix) :] for line in section if line.startswith(prefix)]
    return found


def receives_rtp(section: list[str]) -> bool:
    """An m-section that carries RTP and was not rejected (port 0)."""
    media = section[0].split()
    return len(media) > 3 and media[1] != "0" and "RTP/" in media[2]


def direction(section: list[str]) -> str:
    """The m-section's direction as its writer states it (sendrecv when it says none)."""
    for line in section:
        if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            return line[2:]
    return "sendrecv"


def directions(sdp: str) -> dict[str, str]:
    """Each media m-section's direction, by mid."""
    return {
        key: direction(section)
        for section in sections(sdp)[1:]
        if (key := mid(section)) is not None and receives_rtp(section)
    }


def join(parts: list[list[str]]) -> str:
    return "\r\n".join(line for part in parts for line in part) + "\r\n"
