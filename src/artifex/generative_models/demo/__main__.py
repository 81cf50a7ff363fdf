"""``python -m artifex.generative_models.demo``: the demo training run."""

from artifex.generative_models.demo.app import main

raise SystemExit(main())
