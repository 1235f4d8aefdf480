#!/usr/bin/env python3
"""Keeps netmachine's committed fuzz corpus small: picks, for one fuzz target, the inputs that
add the most coverage on top of the hand-made seeds, up to a cap on the number of files.

    python3 fuzz/pick_corpus.py TARGET POOL_DIR [POOL_DIR...] [--cap 30] [--dry-run]

Run it from the repository root after `RUSTC_BOOTSTRAP=1 cargo fuzz build TARGET` (it runs the
built binary, fuzz/target/x86_64-unknown-linux-gnu/release/TARGET). The `seed-*` files in
fuzz/corpus/TARGET are always kept. Every other file there, and every file in the POOL_DIRs (for
example the working corpus of a long run), is a candidate. Each candidate's coverage is measured
alone (a libFuzzer merge of that one file, which reports its PCs and features); candidates are
then added greedily by new coverage edges, and the remaining room is filled by new features.
Unchosen non-seed files are removed from fuzz/corpus/TARGET; chosen ones are copied in under
their content hash (the name libFuzzer gives them).

`cargo fuzz cmin TARGET` is the simple alternative; it keeps every file that adds a feature, which
after a long run is hundreds of files, and it renames the seeds.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def coverage(binary, path):
    """(PCs, features) of one input, from a libFuzzer merge of that file alone."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        out = os.path.join(tmp, "out")
        os.mkdir(src)
        os.mkdir(out)
        shutil.copy(path, os.path.join(src, "input"))
        control = os.path.join(tmp, "control")
        subprocess.run(
            [binary, "-merge=1", f"-merge_control_file={control}", out, src],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        pcs, features = set(), set()
        if os.path.exists(control):
            with open(control) as f:
                for line in f:
                    if line.startswith("COV "):
                        pcs.update(int(x) for x in line.split()[2:])
                    elif line.startswith("FT "):
                        features.update(int(x) for x in line.split()[2:])
        return pcs, features


def files_in(directory):
    return sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if not name.startswith(".") and os.path.isfile(os.path.join(directory, name))
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("pools", nargs="*")
    parser.add_argument("--cap", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()

    binary = f"fuzz/target/x86_64-unknown-linux-gnu/release/{args.target}"
    corpus = f"fuzz/corpus/{args.target}"
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run RUSTC_BOOTSTRAP=1 cargo fuzz build {args.target}")

    seeds = [p for p in files_in(corpus) if os.path.basename(p).startswith("seed-")]
    def sha1(path):
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()

    seed_digests = {sha1(p) for p in seeds}
    candidates = {}
    for path in [p for p in files_in(corpus) if p not in seeds] + [
        p for pool in args.pools for p in files_in(pool)
    ]:
        digest = sha1(path)
        if digest not in seed_digests:
            candidates.setdefault(digest, path)

    cov = {p: coverage(binary, p) for p in seeds + list(candidates.values())}
    have_pcs = set().union(*(cov[p][0] for p in seeds))
    have_ft = set().union(*(cov[p][1] for p in seeds))
    all_pcs = set().union(have_pcs, *(cov[p][0] for p in candidates.values()))
    chosen = []
    left = dict(candidates)
    for kind in (0, 1):
        have = have_pcs if kind == 0 else have_ft
        while len(seeds) + len(chosen) < args.cap and left:
            digest, path = max(
                left.items(),
                key=lambda item: (len(cov[item[1]][kind] - have), -os.path.getsize(item[1])),
            )
            if not cov[path][kind] - have:
                break
            chosen.append(digest)
            have_pcs |= cov[path][0]
            have_ft |= cov[path][1]
            del left[digest]

    print(
        f"{args.target}: {len(seeds)} seeds + {len(chosen)} chosen of {len(candidates)}; "
        f"{len(have_pcs)} of {len(all_pcs)} edges, {len(have_ft)} features"
    )
    if args.dry_run:
        return
    for digest in chosen:
        target = os.path.join(corpus, digest)
        if not os.path.exists(target):
            shutil.copy(candidates[digest], target)
    for path in files_in(corpus):
        if path not in seeds and os.path.basename(path) not in chosen:
            os.remove(path)


if __name__ == "__main__":
    main()
