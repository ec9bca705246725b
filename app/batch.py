"""`python -m app.batch`: the scoring CLI's former name, kept as an alias of app.score."""

from app.score import main

if __name__ == "__main__":
    raise SystemExit(main())
