/* One table of options (options.def), read once from HAKMEM_* variables. */
#ifndef HAKMEM_OPTIONS_H
#define HAKMEM_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

/* CHOICE: one of a few names (the value is its index); REAL: a decimal
 * number such as 0.05, 1.25 or 5%, kept in millionths. */
typedef enum { HAK_OPT_BOOL, HAK_OPT_SIZE, HAK_OPT_INT, HAK_OPT_CHOICE, HAK_OPT_PATH, HAK_OPT_REAL } hak_opt_kind_t;
#define HAK_OPT_MODE HAK_OPT_CHOICE
#define HAK_REAL(x) ((long long)((x) * 1000000.0 + 0.5))

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
extern bool hak_opt_set[HAK_O_COUNT];        /* given (validly) in the environment: the user's word */

/* Reads the environment (no allocation); reports bad values once. */
void hak_options_init(void);
const char *hak_mode_name(long long mode);
/* An option's value as text (a choice's name, a REAL's decimal). */
const char *hak_option_value_str(int id, long long v, char *buf, size_t cap);
/* The names a CHOICE option accepts (NULL-terminated), NULL for others. */
const char *const *hak_option_choices(int id);
/* A REAL option's value as a double. */
#define HAK_OPT_REAL_VALUE(id) ((double)hak_opt[HAK_O_##id] / 1000000.0)
/* Writes the effective configuration to fd. */
void hak_options_print(int fd);

#define HAK_OPT(id) (hak_opt[HAK_O_##id])
#define HAK_OPT_STR(id) (hak_opt_str[HAK_O_##id]) /* PATH options: the value, or NULL */

#endif
