"""fastapi_peer: the FastAPI + numpy peer of bench/serve — GET /v1/recommendations from the very factors recd serves.

    OPENBLAS_NUM_THREADS=1 taskset -c 0 /usr/bin/python3 bench/fastapi_peer.py --artifact REG/MODEL/VERSION/model.recd \
        --model MODEL@VERSION --port PORT

Reads the artifact (bench/recd_artifact.py), then answers GET /v1/recommendations?user=U&k=K in recd's JSON shape: a
known user's scores are item_factors @ user_vec (plus the biases of BPR and biased MF, as recd adds them), the user's
training items are set to -inf, np.argpartition picks the top k and they are sorted by descending score, ties by
ascending item index (recd's order); an unknown user gets the most popular items ("fallback":"popular"). GET /healthz
answers {"status":"ok"}. Runs uvicorn with one worker in this process, uvloop and httptools when importable (Debian's
python3-uvloop and python3-httptools: bench/setup installs them), access log off: the fastest settings Debian's FastAPI
has. The handler is `async def` (no thread-pool hop) and answers a pre-serialised Response (json.dumps, no pydantic
model on the way out). Prints one line to stderr when ready.
"""

import argparse
import importlib.util
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS: one core, like recd's one worker

import json  # noqa: E402

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recd_artifact import Artifact  # noqa: E402


def _number(score):
    """A score as recd writes it: 6 decimals at most, no ".0" on whole numbers."""
    r = round(float(score), 6)
    return int(r) if r.is_integer() else r


def build_app(art, model_label, default_k, max_k):
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    user_index = {u: i for i, u in enumerate(art.user_ids)}
    item_ids = art.item_ids
    popular = np.lexsort((np.arange(art.n_items), -art.popularity))  # descending popularity, ties by index
    has_vector = art.n_factors > 0

    def answer(user, items, scores, fallback):
        body = {"request_id": os.urandom(8).hex(), "user": user, "model": model_label, "experiment": None, "arm": None,
                "items": [{"item": item_ids[i], "score": _number(s)} for i, s in zip(items, scores)],
                "fallback": fallback}
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    @app.get("/healthz")
    async def healthz():
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/v1/recommendations")
    async def recommendations(user: str, k: int = default_k):
        if k < 1 or k > max_k:
            return JSONResponse({"error": {"code": "invalid_argument", "message": "k must be 1..%d" % max_k}},
                                status_code=400)
        u = user_index.get(user)
        if u is None or not has_vector:
            top = popular[:k]
            return answer(user, top, art.popularity[top], "popular")
        scores = art.score(u)
        scores[art.training_items(u)] = -np.inf
        if k < art.n_items:
            cand = np.argpartition(-scores, k - 1)[:k]
        else:
            cand = np.arange(art.n_items)
        cand = cand[np.isfinite(scores[cand])]
        top = cand[np.lexsort((cand, -scores[cand]))]
        return answer(user, top, scores[top], "none")

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--artifact", required=True, help="model.recd of the version recd serves")
    ap.add_argument("--model", default="model@1", help='the "model" field of the answers, NAME@VERSION')
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--default-k", type=int, default=10)
    ap.add_argument("--max-k", type=int, default=1000)
    args = ap.parse_args()
    if not args.host.startswith("127.") and args.host != "::1":
        ap.error("--host must be a loopback address")

    art = Artifact(args.artifact)
    app = build_app(art, args.model, args.default_k, args.max_k)
    options = {"loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
               "http": "httptools" if importlib.util.find_spec("httptools") else "h11"}
    print("fastapi_peer: %s, %d users x %d items x %d factors, uvicorn %s, loop %s, http %s, numpy %s" %
          (art.kind, art.n_users, art.n_items, art.n_factors, uvicorn.__version__, options["loop"], options["http"],
           np.__version__), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, workers=1, access_log=False, log_level="warning", **options)


if __name__ == "__main__":
    main()
