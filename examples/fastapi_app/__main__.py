"""``python -m examples.fastapi_app [--host H] [--port P]``"""

import uvicorn

from examples import shop
from examples.fastapi_app import create_app

if __name__ == "__main__":
    args = shop.serve_args("python -m examples.fastapi_app", 8000)
    print(f"sessionkit shop (FastAPI) on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
