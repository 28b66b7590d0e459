/* One table of options (options.def), read once from HAKMEM_* variables. */
#ifndef HAKMEM_OPTIONS_H
#define HAKMEM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { HAK_OPT_BOOL, HAK_OPT_SIZE, HAK_OPT_INT, HAK_OPT_MODE, HAK_OPT_PATH, HAK_OPT_CHOICE } hak_opt_kind_t;

typedef enum {
#define HAK_OPTION(id, name, kind, def, lo, hi, help) HAK_O_##id,
#include "options.def"
#undef HAK_OPTION
  HAK_O_COUNT
} hak_opt_id_t;

enum { HAK_MODE_MINIMAL, HAK_MODE_FAST, HAK_MODE_BALANCED, HAK_MODE_LEARNING, HAK_MODE_RESEARCH };
/* HAKMEM_ON_ERROR's values; the secure library's default is abort. */
enum { HAK_ON_ERROR_REPORT, HAK_ON_ERROR_ABORT };
#ifndef HAKMEM_SECURE
#define HAKMEM_SECURE 0
#endif

typedef struct hak_option_desc {
  const char *name;
  hak_opt_kind_t kind;
  long long def, lo, hi;
  const char *help;
} hak_option_desc_t;

extern const hak_option_desc_t hak_option_table[HAK_O_COUNT];
extern long long hak_opt[HAK_O_COUNT];       /* effective values */
extern const char *hak_opt_str[HAK_O_COUNT]; /* PATH options: points into environ */

/* Reads the environment (no allocation); reports bad values once. */
void hak_options_init(void);
const char *hak_mode_name(long long mode);
/* The name of value v of a MODE or CHOICE option (NULL if it has none). */
const char *hak_opt_value_name(int opt, long long v);
/* Writes the effective configuration to fd. */
void hak_options_print(int fd);

#define HAK_OPT(id) (hak_opt[HAK_O_##id])
#define HAK_OPT_STR(id) (hak_opt_str[HAK_O_##id]) /* PATH options: the value, or NULL */

#endif
