// C++ operator new and delete served by hakmem (src/cxx.c), preloaded:
// every form allocates usable, aligned memory; a failure calls the
// new_handler and throws std::bad_alloc (nothrow forms return nullptr);
// the operators are hakmem's own, not libstdc++'s.  test_cxx.sh runs it
// with a call-site profile and checks that its `new`s are named there.
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

struct Small { char b[40]; };
struct Mid { char b[3000]; };
struct alignas(64) Line { char b[64]; };

// The profiled site: about 24 MiB of 200-byte objects, so that the
// profile's sampling (every ~1 MiB) cannot miss it.
__attribute__((noinline)) char *cxx_site_make(size_t i) {
  char *p = new char[200];
  std::memset(p, (int)(i & 0xff), 200);
  return p;
}

static int handler_calls;
static void handler() {
  if (++handler_calls == 2) std::set_new_handler(nullptr);
}

static const char *lib_of(void *fn) {
  Dl_info info;
  return dladdr(fn, &info) && info.dli_fname ? info.dli_fname : "?";
}

int main() {
  // The operators the program calls are hakmem's.
  void *(*op_new)(size_t) = &::operator new;
  void (*op_delete)(void *) noexcept = &::operator delete;
  CHECK(std::strstr(lib_of((void *)op_new), "libhakmem"));
  CHECK(std::strstr(lib_of((void *)op_delete), "libhakmem"));

  // Every size class and tier: usable, writable, each block its own.
  for (size_t n : {0ul, 1ul, 15ul, 16ul, 100ul, 1024ul, 1025ul, 40000ul, 65536ul, 300000ul, 3ul << 20}) {
    char *a = new char[n], *b = static_cast<char *>(::operator new(n));
    CHECK(a && b && a != b);
    CHECK(malloc_usable_size(a) >= n);
    std::memset(a, 0x5a, n);
    std::memset(b, 0xa5, n);
    CHECK(n == 0 || (a[n - 1] == 0x5a && b[0] == (char)0xa5));
    delete[] a;
    ::operator delete(b, n); // the sized form
  }
  Small *s = new Small();
  CHECK(s->b[0] == 0 && s->b[39] == 0); // value-initialised
  delete s;
  Mid *m = new (std::nothrow) Mid;
  CHECK(m);
  delete m;

  // Over-aligned types and explicit alignments, up to 2 MiB.
  std::vector<Line *> lines;
  for (int i = 0; i < 1000; i++) {
    lines.push_back(new Line);
    CHECK((uintptr_t)lines.back() % 64 == 0);
  }
  for (Line *l : lines) delete l;
  for (size_t a = 1; a <= (2u << 20); a <<= 1)
    for (size_t n : {1ul, a, 3 * a + 5}) {
      void *p = ::operator new(n, std::align_val_t(a));
      CHECK((uintptr_t)p % a == 0);
      std::memset(p, 1, n);
      ::operator delete(p, n, std::align_val_t(a));
      p = ::operator new[](n, std::align_val_t(a), std::nothrow);
      CHECK(p && (uintptr_t)p % a == 0);
      ::operator delete[](p, std::align_val_t(a));
    }

  // Too much: the handler runs until it uninstalls itself, then bad_alloc.
  const size_t huge = SIZE_MAX / 2;
  std::set_new_handler(handler);
  bool threw = false;
  try {
    void *volatile p = ::operator new(huge);
    (void)p;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw && handler_calls == 2);
  threw = false;
  try {
    void *volatile p = ::operator new[](huge, std::align_val_t(4096));
    (void)p;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  CHECK(::operator new(huge, std::nothrow) == nullptr);
  CHECK(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr);

  // Blocks that one thread makes and another deletes.
  std::vector<char *> made(4096);
  std::thread maker([&] {
    for (size_t i = 0; i < made.size(); i++) made[i] = new char[16 + i % 2000];
  });
  maker.join();
  std::thread deleter([&] {
    for (char *p : made) delete[] p;
  });
  deleter.join();

  // The profiled site.
  std::vector<char *> keep;
  for (size_t i = 0; i < 120000; i++) {
    keep.push_back(cxx_site_make(i));
    if (keep.size() == 1000) {
      for (char *p : keep) delete[] p;
      keep.clear();
    }
  }
  for (char *p : keep) delete[] p;
  std::puts("cxx: ok");
  return 0;
}
