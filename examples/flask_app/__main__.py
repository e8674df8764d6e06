"""``python -m examples.flask_app [--host H] [--port P]``"""

from examples import shop
from examples.flask_app import create_app

if __name__ == "__main__":
    args = shop.serve_args("python -m examples.flask_app", 5000)
    print(f"sessionkit shop (Flask) on http://{args.host}:{args.port}/", flush=True)
    create_app().run(host=args.host, port=args.port, threaded=True)
