"""Make ``tuneshift/data/bundled/general_verbs.txt``: the general-verb list of ``compare-heads``.

Wu et al. (NAACL 2024, Table 3) compare instruction verbs with general verbs taken from WordNet
verb synsets that have example sentences. This script rebuilds the shipped list:

1. "is a verb": a single-word, alphabetic lemma name of a Princeton WordNet 3.0 verb synset
   that has at least one example sentence (``Synset.examples()`` non-empty). WordNet is read
   from Debian's ``wordnet-base`` package (``/usr/share/wordnet``) with NLTK's
   ``WordNetCorpusReader`` -- no NLTK download.
   whose verb reading is its most frequent one in SemCor (WordNet's tag counts, ``cntlist.rev``;
   this drops e.g. "people", "time", "home", which WordNet also lists as verbs).
2. Frequency: ``wordfreq`` (English, ``top_n_list``), most frequent first.
3. Excluded: the instruction verbs of the paper (``tuneshift.stats.heads_compare.INSTRUCTION_VERBS``)
   and stopwords (scikit-learn's ``ENGLISH_STOP_WORDS``, the Glasgow stop list).
4. The first 3,000 that remain, in frequency order.

Setup (build-time only, not tuneshift dependencies)::

    apt-get install wordnet-base
    pip install nltk wordfreq scikit-learn
    python scripts/make_general_verbs.py [--out tuneshift/data/bundled/general_verbs.txt] [--n 3000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

WORDNET_DIR = "/usr/share/wordnet"
LEXNAMES = (
    [("adj.all", 3), ("adj.pert", 3), ("adv.all", 4)]
    + [
        (f"noun.{n}", 1)
        for n in (
            "Tops act animal artifact attribute body cognition communication event feeling food group location motive "
            "object person phenomenon plant possession process quantity relation shape state substance time"
        ).split()
    ]
    + [
        (f"verb.{n}", 2)
        for n in (
            "body change cognition communication competition consumption contact creation emotion motion perception "
            "possession social stative weather"
        ).split()
    ]
    + [("adj.ppl", 3)]
)


def _mostly_verb(wn, word: str) -> bool:
    """Is the verb reading of ``word`` its most frequent one in SemCor (WordNet's ``cntlist.rev``)?

    Summed tag counts of the word's lemmas per part of speech; the word is kept if the verb
    total is >= every other part of speech's (a word with no counts at all is kept only when
    WordNet knows it solely as a verb).
    """
    totals = {}
    for pos in ("n", "v", "a", "r"):
        lemmas = wn.lemmas(word, pos)
        if lemmas:
            totals[pos] = sum(l.count() for l in lemmas)
    if not any(totals.values()):
        return set(totals) == {"v"}
    return totals.get("v", 0) >= max(totals.values())


def _verbs_with_examples(wn) -> set[str]:
    verbs: set[str] = set()
    for synset in wn.all_synsets("v"):
        if not synset.examples():
            continue
        for name in synset.lemma_names():
            if name.isalpha():
                verbs.add(name.lower())
    return verbs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "tuneshift/data/bundled/general_verbs.txt")
    )
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--wordnet", default=WORDNET_DIR)
    args = ap.parse_args()

    import nltk
    import wordfreq
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from tuneshift.stats.heads_compare import INSTRUCTION_VERBS

    with tempfile.TemporaryDirectory() as tmp:
        # Debian's wordnet-base lacks the "lexnames" file NLTK's reader opens first: copy the
        # database files next to the standard WordNet 3.0 lexnames (the 45 lexicographer files).
        root = Path(tmp) / "corpora" / "wordnet"  # also what nltk.data.find("corpora/wordnet") looks for
        shutil.copytree(args.wordnet, root, ignore=shutil.ignore_patterns("bin", "*.gz"))
        if not (root / "lexnames").exists():
            (root / "lexnames").write_text("".join(f"{i:02d}\t{n}\t{c}\n" for i, (n, c) in enumerate(LEXNAMES)))
        nltk.data.path.append(tmp)  # NLTK only reads corpora under its authorised data paths

        class _Reader(WordNetCorpusReader):
            def map_wn(self, version="wordnet"):  # no cross-version sense mapping (needs index.sense)
                return None

        wn = _Reader(str(root), None)
        verbs = _verbs_with_examples(wn)
        verbs = {w for w in verbs if _mostly_verb(wn, w)}
    excluded = set(INSTRUCTION_VERBS) | set(ENGLISH_STOP_WORDS)
    out: list[str] = []
    for word in wordfreq.top_n_list("en", 200_000):
        if word.isalpha() and word in verbs and word not in excluded and word not in out:
            out.append(word)
            if len(out) == args.n:
                break
    header = [
        f"# General English verbs for `tuneshift compare-heads` (Wu et al. 2024, Table 3): the {len(out)} most",
        "# frequent words (wordfreq, English) that are single-word lemma names of a Princeton WordNet 3.0",
        "# verb synset with an example sentence (Debian wordnet-base, read with NLTK's WordNetCorpusReader),",
        "# excluding the paper's instruction verbs and scikit-learn's English stopwords, and keeping only words",
        "# whose verb reading is the most frequent one in SemCor (WordNet tag counts). Most frequent first.",
        f"# Made by scripts/make_general_verbs.py with wordfreq {metadata.version('wordfreq')}, "
        f"nltk {metadata.version('nltk')}, scikit-learn {metadata.version('scikit-learn')}, WordNet 3.0.",
        "# Caveat: frequency is of the surface form in any part of speech.",
    ]
    Path(args.out).write_text("\n".join(header + out) + "\n", encoding="utf-8")
    print(f"wrote {len(out)} verbs to {args.out}")


if __name__ == "__main__":
    main()
