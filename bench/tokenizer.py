"""Bytes per token of the insurance tokenizer vs a same-size tokenizer trained on the general part only, on
held-out insurance text (documents the data stage kept out of training).

    python bench/tokenizer.py [--preset cpu-small]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-small")
    args = p.parse_args()

    from training import data, tokenizer
    from training.config import load_config

    cfg = load_config(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        data.run(cfg, Path(tmp) / "data")
        m = tokenizer.run(cfg, Path(tmp) / "data", Path(tmp) / "tokenizer")
    print(f"vocabulary {m['vocab_size']} ({m['insurance_terms']} insurance terms kept whole)")
    print(f"  insurance tokenizer   : {m['bytes_per_token']:.3f} bytes/token")
    print(f"  general-only tokenizer: {m['general_only_bytes_per_token']:.3f} bytes/token")
    print(f"  tokens saved on held-out insurance text: {m['token_reduction']:.1%}")
    print(json.dumps(m))


if __name__ == "__main__":
    main()
