"""``python -m kpe.train`` / ``accelerate launch -m kpe.train``: train one model (see ``kpe.train.loop.main``)."""

from kpe.train.loop import main

if __name__ == "__main__":
    main()
