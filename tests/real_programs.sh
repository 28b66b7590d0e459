#!/usr/bin/env bash
# real_programs.sh — real programs give the same results with hakmem.
#
# usage: real_programs.sh LIBHAKMEM.so [SANITIZER]
#
# Each case runs twice, each time in a fresh directory: once as is, once
# with LD_PRELOAD=LIBHAKMEM.so exported (so the program's children — cc1,
# as, ld, git's helpers — use hakmem too).  stdout and the exit status must
# be identical, and the preloaded run must print no "hakmem: " error.
# Exit 0: all passed; 1: a failure; 77 (skip): a program is missing, or the
# library cannot be preloaded in a sanitizer build.
set -u

lib=${1:?usage: real_programs.sh LIBHAKMEM.so [SANITIZER]}
sanitizer=${2:-}
lib=$(readlink -f "$lib")
[[ -r $lib ]] || { echo "no such library: $1"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-real.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# Same environment for both runs; deterministic hashing and collation.
export LC_ALL=C PYTHONHASHSEED=0 PERL_HASH_SEED=0 PYTHONDONTWRITEBYTECODE=1
unset LD_PRELOAD
# hakmem's default configuration: no HAKMEM_* settings from the caller.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^HAKMEM_')

failures=0
skipped=()
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# ---------------------------------------------------------------- preload
# Can the library be preloaded at all?  A UBSan build may need a runtime
# that an uninstrumented program does not provide: then skip.
if ! probe=$(LD_PRELOAD=$lib /bin/true 2>&1) || [[ -n $probe ]]; then
  if [[ -n $sanitizer ]]; then
    echo "SKIP: $lib cannot be preloaded in this $sanitizer build: $probe"
    exit 77
  fi
  echo "FAIL: LD_PRELOAD=$lib does not load cleanly: $probe"
  exit 1
fi

# Is hakmem really what malloc is, in a preloaded process?
if LD_PRELOAD=$lib cat /proc/self/maps | grep -q "$(basename "$lib")"; then
  echo "ok: libhakmem is mapped in a preloaded process"
else
  fail "libhakmem not mapped in a preloaded cat"
fi
if command -v python3 >/dev/null; then
  owns=$(LD_PRELOAD=$lib python3 -c '
import ctypes
c = ctypes.CDLL(None)
c.malloc.restype = ctypes.c_void_p
c.malloc.argtypes = [ctypes.c_size_t]
c.hak_owns.argtypes = [ctypes.c_void_p]
p = c.malloc(16)
print(c.hak_owns(p))' 2>&1)
  [[ $owns == 1 ]] && echo "ok: python3's malloc is hakmem's" ||
    fail "python3's malloc is not hakmem's (hak_owns: $owns)"
fi

# ---------------------------------------------------------------- harness
# run_case NAME FUNCTION PROGRAM...: FUNCTION runs the workload in the
# current directory; PROGRAMs must exist or the case is skipped.
run_case() {
  local name=$1 fn=$2 prog
  shift 2
  for prog in "$@"; do
    if ! command -v "$prog" >/dev/null; then
      echo "SKIP: $name ($prog not found)"
      skipped+=("$prog")
      return
    fi
  done
  local mode start=$SECONDS
  for mode in plain hakmem; do
    local d=$work/$name.$mode
    mkdir -p "$d"
    (
      cd "$d" || exit 99
      [[ $mode == hakmem ]] && export LD_PRELOAD=$lib
      "$fn"
    ) >"$d.out" 2>"$d.err"
    echo $? >"$d.rc"
  done
  local p=$work/$name.plain h=$work/$name.hakmem ok=1
  if [[ $(<"$p.rc") != 0 ]]; then
    fail "$name: the workload itself fails without hakmem (exit $(<"$p.rc")):"
    head -20 "$p.err"
    ok=0
  elif [[ ! -s $p.out ]]; then
    fail "$name: the workload printed nothing"
    ok=0
  fi
  if [[ $(<"$p.rc") != $(<"$h.rc") ]]; then
    fail "$name: exit status $(<"$p.rc") without hakmem, $(<"$h.rc") with it"
    ok=0
  fi
  if ! cmp -s "$p.out" "$h.out"; then
    fail "$name: output differs with hakmem:"
    diff "$p.out" "$h.out" | head -20
    ok=0
  fi
  if grep -q "hakmem: " "$h.err"; then
    fail "$name: hakmem reported errors:"
    grep "hakmem: " "$h.err" | head -10
    ok=0
  fi
  if ((!ok)) && [[ -s $h.err ]]; then
    echo "--- stderr with hakmem ($name) ---"
    head -20 "$h.err"
  fi
  ((ok)) && echo "ok: $name ($((SECONDS - start)) s, $(wc -l <"$p.out") lines compared)"
}

# ---------------------------------------------------------------- workloads

python_churn() {
  cat >churn.py <<'EOF'
import hashlib, json, random, threading

random.seed(12345)
digest = hashlib.sha256()

def out(label, value):
    text = repr(value)
    digest.update(text.encode())
    print(label, hashlib.sha256(text.encode()).hexdigest()[:16])

# dict churn: grow, mutate, delete
d = {}
for i in range(80000):
    k = "k%d" % random.randrange(30000)
    d[k] = d.get(k, "") + str(i % 97)
    if len(d[k]) > 40:
        del d[k]
out("dict", sorted(d.items()))

# lists of floats and tuples, sorted several ways
nums = [random.random() for _ in range(60000)]
out("floats", sorted(nums)[::997])
pairs = [(random.randrange(1000), "x" * random.randrange(20)) for _ in range(30000)]
pairs.sort(key=lambda p: (p[1], -p[0]))
out("pairs", pairs[::501])

# strings: build, split, join, count
words = ["".join(random.choice("abcdefgh") for _ in range(random.randrange(1, 10)))
         for _ in range(40000)]
text = " ".join(words)
counts = {}
for w in text.split():
    counts[w] = counts.get(w, 0) + 1
out("words", sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:200])
out("upper", text.upper()[::1001])

# json round trip of a nested structure
doc = {"items": [{"id": i, "tags": ["t%d" % (i % 7)] * (i % 5), "v": i * 0.5}
                 for i in range(10000)], "meta": d}
s = json.dumps(doc, sort_keys=True)
assert json.loads(s) == doc
out("json", (len(s), s[:200], s[-200:]))

# threads allocating concurrently (the GIL still switches between them)
results = [None] * 4
def work(t):
    r = random.Random(t)
    acc = []
    for i in range(15000):
        acc.append(str(r.random()) * (i % 3))
        if len(acc) > 500:
            acc = acc[250:]
    results[t] = sorted(acc)[:50]
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
out("threads", results)

print("digest", digest.hexdigest())
EOF
  python3 churn.py
}

perl_churn() {
  cat >churn.pl <<'EOF'
use strict; use warnings;
use Digest::MD5 qw(md5_hex);
my $seed = 42;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed % $_[0]; }
my %h;
for my $i (1 .. 80000) {
    my $k = "key" . rnd(20000);
    $h{$k} .= chr(97 + $i % 26);
    delete $h{$k} if length $h{$k} > 30;
}
my @keys = sort keys %h;
print "hash ", scalar(@keys), " ", md5_hex(join ",", map { "$_=$h{$_}" } @keys), "\n";
my @lines = map { join " ", map { "w" . rnd(500) } 1 .. 1 + rnd(12) } 1 .. 25000;
my $text = join "\n", @lines;
my (%count, @hits);
$count{$_}++ for $text =~ /\b(w\d*7)\b/g;
push @hits, $1 while $text =~ /(w1\d\d) (w2\d+)/g;
print "regex ", scalar(keys %count), " ", scalar(@hits), " ", md5_hex(join ",", @hits), "\n";
(my $sub = $text) =~ s/w(\d+)/<$1>/g;
print "subst ", length($sub), " ", md5_hex($sub), "\n";
my @sorted = sort { length($a) <=> length($b) or $b cmp $a } @lines;
print "sort ", md5_hex(join "\n", @sorted), "\n";
my @nums = sort { $a <=> $b } map { rnd(1000000) / 7 } 1 .. 50000;
print "nums ", md5_hex(join ",", @nums[0 .. 999]), "\n";
EOF
  perl churn.pl
}

# gen_lines N: a deterministic N-line file (a linear congruential generator
# in awk).
gen_lines() {
  awk -v n="$1" 'BEGIN { s = 7; for (i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648
    printf "%08x %d line%d %s\n", s, s % 100000, i, substr("qwertyuiopasdfghjkl", 1 + s % 17)
  } }'
}

sort_big() {
  gen_lines 200000 >in.txt
  sort in.txt | md5sum
  sort -k2,2n -k1,1r in.txt | md5sum
  # Small buffer: temporary files and merging, on two threads.
  sort --parallel=2 -S 1M -T . in.txt | md5sum
  sort in.txt | head -3
}

gcc_compile() {
  cat >prog.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; unsigned key; char name[24]; };
static int cmp(const void *a, const void *b) {
  unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
  return (x > y) - (x < y);
}
int main(void) {
  unsigned s = 1, n = 100000, sum = 0;
  unsigned *v = malloc(n * sizeof *v);
  struct node *head = NULL;
  for (unsigned i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = s;
    if (i % 10 == 0) {
      struct node *nd = malloc(sizeof *nd);
      nd->key = s; snprintf(nd->name, sizeof nd->name, "n%u", i);
      nd->next = head; head = nd;
    }
  }
  qsort(v, n, sizeof *v, cmp);
  for (unsigned i = 0; i < n; i += 1000) sum = sum * 31 + v[i];
  char *buf = NULL; size_t len = 0;
  for (struct node *nd = head; nd; nd = nd->next) {
    size_t l = strlen(nd->name);
    buf = realloc(buf, len + l + 1); memcpy(buf + len, nd->name, l + 1); len += l;
  }
  printf("min %u max %u sum %u len %zu\n", v[0], v[n - 1], sum, len);
  while (head) { struct node *nx = head->next; free(head); head = nx; }
  free(buf); free(v);
  return 0;
}
EOF
  gcc -O2 -Wall -o prog prog.c && ./prog
}

# A C++ compile (cc1plus is C++ too), then the program: maps, strings and
# vectors through operator new and delete (src/cxx.c).
cxx_compile() {
  cat >prog.cc <<'EOF'
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>
int main() {
  std::map<std::string, std::vector<int>> index;
  for (int i = 0; i < 200000; i++) {
    std::string key = "k" + std::to_string(i * 7919 % 5003);
    index[key].push_back(i);
    if (i % 3 == 0) index.erase("k" + std::to_string(i * 104729 % 5003));
  }
  std::vector<std::unique_ptr<std::string>> owned;
  for (int i = 0; i < 50000; i++) owned.push_back(std::make_unique<std::string>(i % 97, 'x'));
  unsigned long sum = 0, len = 0;
  for (auto &kv : index) for (int v : kv.second) sum = sum * 31 + v;
  for (auto &s : owned) len += s->size();
  std::printf("%zu keys, sum %lu, len %lu\n", index.size(), sum, len);
}
EOF
  g++ -O2 -Wall -o prog prog.cc && ./prog
}

git_repo() {
  export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$PWD/.gitconfig
  export GIT_AUTHOR_DATE="2024-01-02T03:04:05Z" GIT_COMMITTER_DATE="2024-01-02T03:04:05Z"
  git init -q -b main repo && cd repo || return 1
  git config user.name "Test User" && git config user.email test@example.com
  for i in $(seq 1 40); do seq "$i" 3 $((i * 50)) >"file$i.txt"; done
  mkdir sub && seq 1 5000 >sub/big.txt
  git add . && git commit -q -m "first commit"
  for i in $(seq 1 2 40); do echo "change $i" >>"file$i.txt"; done
  git rm -q file2.txt && git mv file3.txt sub/moved.txt
  export GIT_COMMITTER_DATE="2024-01-03T00:00:00Z"
  git add . && git commit -q -m "second commit"
  git log --stat
  git diff --stat HEAD~1
  git show HEAD:sub/moved.txt | md5sum
  git gc -q && git count-objects -v | grep -v size
  git status --porcelain
}

sed_awk() {
  gen_lines 100000 >in.txt
  sed -e 's/line\([0-9]*\)/L<\1>/' -e '/^[0-7]/d' in.txt | md5sum
  awk '{ n[$4]++; s[$4] += $2 } END { for (k in n) print k, n[k], s[k] }' in.txt | sort
}

# ---------------------------------------------------------------- run
run_case python python_churn python3
run_case perl perl_churn perl
run_case sort sort_big sort awk md5sum
run_case gcc gcc_compile gcc
run_case cxx cxx_compile g++
run_case git git_repo git seq md5sum
run_case sed_awk sed_awk sed awk sort md5sum

if ((failures)); then
  echo "real_programs: $failures failure(s)"
  exit 1
fi
if ((${#skipped[@]})); then
  echo "real_programs: skipped (missing: ${skipped[*]})"
  exit 77
fi
echo "real_programs: all passed"
