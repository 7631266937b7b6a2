"""Recall of the near-duplicate search on real texts: built-in tasks' test texts edited and hidden in another task.

For each of four built-in tasks and each of issue 17's five edits (trailing period, `&amp;` for `&`, a curly
apostrophe, an added emoji, the words in reverse order), N/5 of its test (then validation) texts that the edit
changes are edited, hidden among the train + validation texts of another task, and looked up with the settings an
experiment uses (`near_hits`, the default Jaccard threshold). Prints how many were found per edit, and how many
of the originals match the other task's texts without the hidden copies (false positives).

    python benchmarks/near_duplicate_recall.py --n 200
"""
from __future__ import annotations

import argparse
from collections import Counter

EDITS = {  # each applied only to texts it changes: a curly apostrophe needs an apostrophe to replace
    "trailing period": lambda t: t + ".",
    "&amp;": lambda t: t.replace("&", "&amp;") if "&" in t else t.replace(" ", " &amp; ", 1),
    "curly apostrophe": lambda t: t.replace("'", "\u2019"),
    "added emoji": lambda t: t + " \U0001F600",
    "reverse order": lambda t: " ".join(reversed(t.split())),
}
PAIRS = [("rotten_tomatoes", "crowdflower_twitter_sentiment"), ("vader_tweets", "rotten_tomatoes"),
         ("trec_coarse", "sms_spam"), ("bbc_news", "vader_nyt")]


def main() -> None:
    from basefuse.data.api import load_task
    from basefuse.data.near_dup import build_index, near_hits
    from basefuse.experiments.config import LeakageSettings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    jaccard = LeakageSettings().near_duplicate_jaccard
    total = Counter()
    for target, other in PAIRS:
        task = load_task(target)
        pool = list(task.test["text"]) + list(task.validation["text"])
        hay = load_task(other)
        seen = list(hay.train["text"]) + list(hay.validation["text"])
        line = []
        for name, edit in EDITS.items():
            originals = [t for t in pool if edit(t) != t and t.split()][:args.n // len(EDITS)]
            edited = [edit(t) for t in originals]
            found = near_hits(build_index([(t,) for t in originals]),
                              build_index([(t,) for t in seen + edited]), jaccard)
            clean = near_hits(build_index([(t,) for t in originals]), build_index([(t,) for t in seen]), jaccard)
            total.update({"found": len(found), "n": len(originals), "false": len(clean)})
            line.append(f"{name} {len(found)}/{len(originals)}")
        print(f"{target} hidden in {other}: " + ", ".join(line))
    print(f"recall {total['found']}/{total['n']} = {total['found'] / total['n']:.1%}; matches without the hidden "
          f"copies (false positives): {total['false']}")


if __name__ == "__main__":
    main()
