"""A small, allocation-heavy Python program: the main job's real workload.

It builds and discards many objects of mixed sizes (dicts, lists, strings,
JSON round trips, a sort), the kind of churn a web service or a build tool
does, and prints a digest so that runs can be compared for equality.
"""
import hashlib
import json


def churn(rounds: int) -> str:
    digest = hashlib.sha256()
    for r in range(rounds):
        records = [
            {"id": i, "name": f"user-{i}-{r}", "tags": [str(t) * (t % 7 + 1) for t in range(i % 13)]}
            for i in range(20000)
        ]
        text = json.dumps(records)
        back = json.loads(text)
        back.sort(key=lambda rec: (len(rec["tags"]), rec["name"]))
        index = {rec["name"]: rec for rec in back}
        blob = "".join(rec["name"] for rec in back[::97]).encode()
        digest.update(blob)
        digest.update(str(len(index)).encode())
        big = [bytearray(64 * 1024 + r) for _ in range(64)]  # Large blocks
        digest.update(bytes(big[r % 64][:16]))
    return digest.hexdigest()


if __name__ == "__main__":
    print("workload digest:", churn(12))
