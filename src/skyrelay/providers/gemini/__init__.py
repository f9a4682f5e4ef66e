"""Google's Gemini models: the Gemini API (kind `gemini`) and Vertex AI (kind `vertex`).

request.py builds generateContent bodies, response.py and stream.py read answers, failures.py maps Google's
errors, auth.py gets Vertex tokens; provider.py ties them to the HTTP pool.
"""

from .provider import GeminiProvider, VertexProvider

__all__ = ["GeminiProvider", "VertexProvider"]
