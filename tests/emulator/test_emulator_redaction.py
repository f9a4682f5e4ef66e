"""What a cloud remembers of its requests (GET /_emulator/requests) never holds a credential."""

from __future__ import annotations

import httpx2 as httpx


async def test_credentials_in_headers_and_query_are_redacted(make_cloud):
    cloud = await make_cloud(protocol="gemini", api_key="gem-secret-key")
    async with httpx.AsyncClient(base_url=cloud.base_url, timeout=5) as http:
        await http.post("/v1beta/models/gemini-2.0-flash:generateContent?key=gem-secret-key",
                        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                        headers={"x-goog-api-key": "gem-secret-key"})
        recorded = (await http.get("/_emulator/requests")).text
    assert "gem-secret-key" not in recorded
    assert "key=<redacted>" in recorded


def test_articles_follow_the_sound_not_the_letter():
    import random

    from skyrelay.emulator.text import sentence_words

    text = " ".join(" ".join(sentence_words(random.Random(seed), 12)) for seed in range(400)).lower()
    assert " an useful" not in text and " an unique" not in text
