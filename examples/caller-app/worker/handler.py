"""The endpoint side of the example: a RunPod worker that "generates an image" from a prompt.

Offline there is no diffusion model, so the image is a small PNG drawn from the prompt's hash
(deterministic: same prompt and seed, same bytes), and `steps` cost a little time like sampling
steps would. Swap `render` for your model; the caller side does not change.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from typing import Any

import runpod


def _png(width: int, height: int, rgb: tuple[int, int, int], stripe: int) -> bytes:
    rows = []
    for y in range(height):
        row = bytearray([0])  # filter byte: none
        for x in range(width):
            on = ((x + y) // stripe) % 2
            row += bytes(c // 2 if on else c for c in rgb)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def _check(job_input: Any) -> dict[str, Any]:
    if not isinstance(job_input, dict):
        raise ValueError("input: expected an object with a prompt")
    prompt = job_input.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt: expected a non-empty string")
    out = {"prompt": prompt, "seed": job_input.get("seed", 0)}
    for field, default, low, high in (("width", 64, 8, 512), ("height", 64, 8, 512),
                                      ("steps", 10, 1, 200)):  # fmt: skip
        value = job_input.get(field, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{field}: expected an integer from {low} to {high}, got {value!r}")
        out[field] = value
    if not isinstance(out["seed"], int) or isinstance(out["seed"], bool):
        raise ValueError(f"seed: expected an integer, got {out['seed']!r}")
    return out


def render(spec: dict[str, Any]) -> bytes:
    digest = hashlib.sha256(f"{spec['prompt']}|{spec['seed']}".encode()).digest()
    return _png(spec["width"], spec["height"], (digest[0], digest[1], digest[2]), 4 + digest[3] % 8)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = _check(job.get("input"))
    except ValueError as exc:
        return {"error": str(exc)}
    await asyncio.sleep(spec["steps"] * 0.01)  # "sampling"
    png = await asyncio.to_thread(render, spec)
    return {
        "prompt": spec["prompt"],
        "seed": spec["seed"],
        "width": spec["width"],
        "height": spec["height"],
        "image_png_base64": base64.b64encode(png).decode(),
    }


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler})
