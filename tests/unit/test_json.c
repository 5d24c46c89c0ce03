/* The JSON codec against JSONTestSuite, the record mapping it promises, and
 * the writer's guarantees (valid output, exact double round trips). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "rtproc/json.h"

#define SUITE_DIR RTP_DATA_DIR "/json-test-suite"

/* ---- helpers --------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static DIR *open_suite(void)
{
    DIR *d = opendir(SUITE_DIR);
    if (!d) cr_skip_test("%s is missing (../shared/data is missing)", SUITE_DIR);
    return d;
}

typedef void (*suite_check)(const char *name, const char *s, size_t len);

/* Runs check on every file whose name starts with prefix; returns how many. */
static int each_suite_file(const char *prefix, suite_check check)
{
    DIR *d = open_suite();
    int count = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", SUITE_DIR, e->d_name);
        size_t len;
        char *s = read_file(path, &len);
        check(e->d_name, s, len);
        free(s);
        count++;
    }
    closedir(d);
    return count;
}

static rtp_batch *batch;

static void setup(void)
{
    batch = rtp_batch_create("test");
}

static void teardown(void)
{
    rtp_batch_unref(batch);
}

/* Parses s into a new record of the test batch; NULL (with *err) on error. */
static rtp_record *parse_flags(const char *s, size_t len, unsigned flags, rtp_json_error *err)
{
    rtp_record *r = rtp_batch_append(batch, 4);
    rtp_json_error e = {0};
    int rc = rtp_json_parse_record(batch, r, s, len, flags, &e);
    if (err) *err = e;
    return rc == 0 ? r : NULL;
}

static rtp_record *parse(const char *s)
{
    rtp_json_error e;
    rtp_record *r = parse_flags(s, strlen(s), 0, &e);
    cr_assert_not_null(r, "parse failed at %zu: %s (%s)", e.offset, e.msg, s);
    return r;
}

static const char *parse_error(const char *s)
{
    rtp_json_error e = {0};
    cr_assert_null(parse_flags(s, strlen(s), 0, &e), "accepted: %s", s);
    cr_assert_not_null(e.msg);
    return e.msg;
}

static const rtp_field *field(const rtp_record *r, const char *name)
{
    return rtp_record_get(r, rtp_key_cstr(name));
}

static const rtp_field *typed(const rtp_record *r, const char *name, rtp_type type)
{
    const rtp_field *f = field(r, name);
    cr_assert_not_null(f, "no field %s", name);
    cr_assert_eq(f->type, type, "field %s has type %d, not %d", name, f->type, type);
    return f;
}

static void expect_str(const rtp_record *r, const char *name, const char *want, size_t len)
{
    const rtp_field *f = typed(r, name, RTP_STRING);
    cr_expect_eq(f->len, len, "%s: length %u, want %zu", name, f->len, len);
    cr_expect(f->len == len && memcmp(f->v.s, want, len) == 0, "%s: %.*s", name, (int)f->len,
              f->v.s);
}

static double expect_double(const rtp_record *r, const char *name)
{
    return typed(r, name, RTP_DOUBLE)->v.d;
}

static bool same_double(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Writes d alone and returns the text (static buffer). */
static const char *double_text(double d)
{
    static char text[64];
    rtp_sbuf sb = {0};
    rtp_json_write_double(&sb, d);
    cr_assert_lt(sb.len, sizeof text);
    memcpy(text, sb.data, sb.len);
    text[sb.len] = 0;
    rtp_sbuf_free(&sb);
    return text;
}

static char *write_record(const rtp_record *r, const rtp_json_write_opts *opts, size_t *len)
{
    rtp_sbuf sb = {0};
    rtp_json_write_record(&sb, r, opts);
    rtp_sbuf_append(&sb, "", 1);
    *len = sb.len - 1;
    return sb.data;
}

/* ---- JSONTestSuite --------------------------------------------------------- */

static void must_accept(const char *name, const char *s, size_t len)
{
    rtp_json_error e = {0};
    cr_expect_eq(rtp_json_validate(s, len, &e), 0, "%s rejected at %zu: %s", name, e.offset,
                 e.msg);
    const char *p = s;
    while (p < s + len && strchr(" \t\r\n", *p)) p++;
    if (p < s + len && *p == '{') {
        rtp_record *r = parse_flags(s, len, 0, &e);
        cr_expect_not_null(r, "%s: record rejected at %zu: %s", name, e.offset, e.msg);
    }
}

static void must_reject(const char *name, const char *s, size_t len)
{
    rtp_json_error e = {0};
    cr_expect_eq(rtp_json_validate(s, len, &e), -1, "%s accepted", name);
    cr_expect(e.msg && e.offset <= len, "%s: no error message or offset", name);
    cr_expect_null(parse_flags(s, len, 0, NULL), "%s accepted as a record", name);
    cr_expect_null(parse_flags(s, len, RTP_JSON_NESTED_AS_TEXT | RTP_JSON_ZERO_COPY, NULL),
                   "%s accepted as a record (text, zero-copy)", name);
}

Test(suite, every_y_file_is_accepted, .init = setup, .fini = teardown)
{
    cr_expect_eq(each_suite_file("y_", must_accept), 95);
}

Test(suite, every_n_file_is_rejected, .init = setup, .fini = teardown)
{
    cr_expect_eq(each_suite_file("n_", must_reject), 188);
}

/* The answers docs/json.md gives for the implementation-defined files. */
static const struct {
    const char *name;
    bool valid;
} i_answers[] = {
    {"i_number_double_huge_neg_exp.json", true},
    {"i_number_huge_exp.json", true},
    {"i_number_neg_int_huge_exp.json", true},
    {"i_number_pos_double_huge_exp.json", true},
    {"i_number_real_neg_overflow.json", true},
    {"i_number_real_pos_overflow.json", true},
    {"i_number_real_underflow.json", true},
    {"i_number_too_big_neg_int.json", true},
    {"i_number_too_big_pos_int.json", true},
    {"i_number_very_big_negative_int.json", true},
    {"i_object_key_lone_2nd_surrogate.json", false},
    {"i_string_1st_surrogate_but_2nd_missing.json", false},
    {"i_string_1st_valid_surrogate_2nd_invalid.json", false},
    {"i_string_UTF-16LE_with_BOM.json", false},
    {"i_string_UTF-8_invalid_sequence.json", false},
    {"i_string_UTF8_surrogate_U+D800.json", false},
    {"i_string_incomplete_surrogate_and_escape_valid.json", false},
    {"i_string_incomplete_surrogate_pair.json", false},
    {"i_string_incomplete_surrogates_escape_valid.json", false},
    {"i_string_invalid_lonely_surrogate.json", false},
    {"i_string_invalid_surrogate.json", false},
    {"i_string_invalid_utf-8.json", false},
    {"i_string_inverted_surrogates_U+1D11E.json", false},
    {"i_string_iso_latin_1.json", false},
    {"i_string_lone_second_surrogate.json", false},
    {"i_string_lone_utf8_continuation_byte.json", false},
    {"i_string_not_in_unicode_range.json", false},
    {"i_string_overlong_sequence_2_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes_null.json", false},
    {"i_string_truncated-utf-8.json", false},
    {"i_string_utf16BE_no_BOM.json", false},
    {"i_string_utf16LE_no_BOM.json", false},
    {"i_structure_500_nested_arrays.json", true},
    {"i_structure_UTF-8_BOM_empty_object.json", false},
};

static const bool *documented_answer(const char *name)
{
    for (size_t i = 0; i < sizeof i_answers / sizeof *i_answers; i++)
        if (strcmp(i_answers[i].name, name) == 0) return &i_answers[i].valid;
    return NULL;
}

static void must_match_docs(const char *name, const char *s, size_t len)
{
    const bool *valid = documented_answer(name);
    cr_assert_not_null(valid, "%s: not in docs/json.md", name);
    int want = *valid ? 0 : -1;
    cr_expect_eq(rtp_json_validate(s, len, NULL), want, "%s: want %s", name,
                 want ? "rejected" : "accepted");
    parse_flags(s, len, 0, NULL); /* must not crash; objects among them are invalid */
}

Test(suite, i_files_get_the_documented_answer, .init = setup, .fini = teardown)
{
    cr_expect_eq(each_suite_file("i_", must_match_docs), 35);
}

/* The i_number files' values as record fields: {"v": <number>}. */
Test(suite, i_numbers_in_records, .init = setup, .fini = teardown)
{
    static const struct {
        const char *json;
        const char *error; /* NULL: a double equal to value */
        double value;
    } cases[] = {
        {"{\"v\":123.456e-789}", NULL, 0.0},
        {"{\"v\":0.4e00669999999999999999999999999999999999999999999999}", "number out of range", 0},
        {"{\"v\":-1e+9999}", "number out of range", 0},
        {"{\"v\":1.5e+9999}", "number out of range", 0},
        {"{\"v\":-123123e100000}", "number out of range", 0},
        {"{\"v\":123123e100000}", "number out of range", 0},
        {"{\"v\":123e-10000000}", NULL, 0.0},
        {"{\"v\":-123123123123123123123123123123}", NULL, -1.2312312312312312e29},
        {"{\"v\":100000000000000000000}", NULL, 1e20},
        {"{\"v\":-237462374673276894279832749832423479823246327846}", NULL,
         -2.3746237467327689e47},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].error) {
            cr_expect_str_eq(parse_error(cases[i].json), cases[i].error, "%s", cases[i].json);
        } else {
            double d = expect_double(parse(cases[i].json), "v");
            cr_expect(same_double(d, cases[i].value), "%s -> %.17g", cases[i].json, d);
        }
    }
}

/* ---- nesting ---------------------------------------------------------------- */

static char *nested(const char *open, const char *inner, const char *close, int depth, size_t *len)
{
    size_t no = strlen(open), ni = strlen(inner), nc = strlen(close);
    *len = (no + nc) * (size_t)depth + ni;
    char *s = malloc(*len + 1), *p = s;
    for (int i = 0; i < depth; i++, p += no) memcpy(p, open, no);
    memcpy(p, inner, ni);
    p += ni;
    for (int i = 0; i < depth; i++, p += nc) memcpy(p, close, nc);
    *p = 0;
    return s;
}

Test(nesting, arrays_up_to_the_limit)
{
    size_t len;
    char *s = nested("[", "", "]", RTP_JSON_MAX_DEPTH, &len);
    cr_expect_eq(rtp_json_validate(s, len, NULL), 0);
    free(s);
    s = nested("[", "", "]", RTP_JSON_MAX_DEPTH + 1, &len);
    rtp_json_error e;
    cr_expect_eq(rtp_json_validate(s, len, &e), -1);
    cr_expect_str_eq(e.msg, "nesting too deep");
    cr_expect_eq(e.offset, RTP_JSON_MAX_DEPTH);
    free(s);
}

Test(nesting, record_objects_up_to_the_limit, .init = setup, .fini = teardown)
{
    size_t len;
    char *s = nested("{\"a\":", "1", "}", RTP_JSON_MAX_DEPTH, &len);
    rtp_record *r = parse_flags(s, len, 0, NULL);
    cr_assert_not_null(r);
    cr_expect_eq(r->nfields, 1);
    size_t name_len;
    const char *name = rtp_key_name(r->fields[0].key, &name_len);
    cr_expect_eq(name_len, 2 * RTP_JSON_MAX_DEPTH - 1); /* a.a.a... */
    cr_expect_eq(strncmp(name, "a.a.a", 5), 0);
    cr_expect_not_null(parse_flags(s, len, RTP_JSON_NESTED_AS_TEXT, NULL));
    free(s);
    s = nested("{\"a\":", "1", "}", RTP_JSON_MAX_DEPTH + 1, &len);
    rtp_json_error e;
    cr_expect_null(parse_flags(s, len, 0, &e));
    cr_expect_str_eq(e.msg, "nesting too deep");
    cr_expect_null(parse_flags(s, len, RTP_JSON_NESTED_AS_TEXT, &e));
    cr_expect_str_eq(e.msg, "nesting too deep");
    free(s);
}

Test(nesting, arrays_in_records_count_toward_the_limit, .init = setup, .fini = teardown)
{
    size_t len;
    char *inner = nested("[", "", "]", RTP_JSON_MAX_DEPTH - 1, &len);
    char *s = malloc(len + 16);
    snprintf(s, len + 16, "{\"a\":%s}", inner);
    cr_expect_not_null(parse_flags(s, strlen(s), 0, NULL));
    free(s);
    free(inner);
    inner = nested("[", "", "]", RTP_JSON_MAX_DEPTH, &len);
    s = malloc(len + 16);
    snprintf(s, len + 16, "{\"a\":%s}", inner);
    cr_expect_null(parse_flags(s, strlen(s), 0, NULL));
    free(s);
    free(inner);
}

Test(nesting, a_million_open_brackets_neither_crash_nor_recurse, .init = setup,
     .fini = teardown)
{
    size_t len = 1000000;
    char *s = malloc(len + 8);
    memcpy(s, "{\"a\":", 5);
    memset(s + 5, '[', len - 5);
    cr_expect_eq(rtp_json_validate(s + 5, len - 5, NULL), -1);
    cr_expect_null(parse_flags(s, len, 0, NULL));
    free(s);
    s = nested("{\"a\":", "", "", 200000, &len);
    cr_expect_null(parse_flags(s, len, 0, NULL));
    cr_expect_null(parse_flags(s, len, RTP_JSON_NESTED_AS_TEXT, NULL));
    free(s);
}

/* ---- records ------------------------------------------------------------------ */

TestSuite(record, .init = setup, .fini = teardown);

Test(record, tick)
{
    rtp_record *r = parse("{\"symbol\":\"AAPL\",\"ts\":1700000000123,\"price\":189.25,"
                          "\"volume\":1200,\"bid\":189.24,\"ask\":189.26}");
    cr_assert_eq(r->nfields, 6);
    static const char *order[] = {"symbol", "ts", "price", "volume", "bid", "ask"};
    for (int i = 0; i < 6; i++) cr_expect_eq(r->fields[i].key, rtp_key_cstr(order[i]));
    expect_str(r, "symbol", "AAPL", 4);
    cr_expect_eq(typed(r, "ts", RTP_INT)->v.i, 1700000000123);
    cr_expect_eq(expect_double(r, "price"), 189.25);
    cr_expect_eq(typed(r, "volume", RTP_INT)->v.i, 1200);
    cr_expect_eq(expect_double(r, "bid"), 189.24);
    cr_expect_eq(expect_double(r, "ask"), 189.26);
}

Test(record, literals_and_white_space)
{
    rtp_record *r = parse(" \t\r\n{ \"t\" : true ,\n\"f\":false,\"n\":null } \n");
    cr_expect_eq(typed(r, "t", RTP_BOOL)->v.b, true);
    cr_expect_eq(typed(r, "f", RTP_BOOL)->v.b, false);
    typed(r, "n", RTP_NULL);
    cr_expect_eq(parse("{}")->nfields, 0);
}

Test(record, integers_that_fit_int64)
{
    rtp_record *r = parse("{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
                          "\"zero\":0,\"negzero\":-0,\"over\":9223372036854775808,"
                          "\"under\":-9223372036854775809,\"exp\":1e2,\"frac\":1.0}");
    cr_expect_eq(typed(r, "max", RTP_INT)->v.i, INT64_MAX);
    cr_expect_eq(typed(r, "min", RTP_INT)->v.i, INT64_MIN);
    cr_expect_eq(typed(r, "zero", RTP_INT)->v.i, 0);
    cr_expect_eq(typed(r, "negzero", RTP_INT)->v.i, 0);
    cr_expect_eq(expect_double(r, "over"), 9223372036854775808.0);
    cr_expect_eq(expect_double(r, "under"), -9223372036854775808.0);
    cr_expect_eq(expect_double(r, "exp"), 100.0);
    cr_expect_eq(expect_double(r, "frac"), 1.0);
}

/* Every conversion must equal glibc's correctly rounded strtod. */
Test(record, doubles_are_correctly_rounded)
{
    static const char *texts[] = {
        "0.1", "189.25", "-0.0", "1e-400", "5e-324", "4.9406564584124654e-324",
        "2.2250738585072011e-308", "2.2250738585072012e-308", "1.7976931348623157e308",
        "9007199254740993", "9007199254740993.0", "9007199254740992.9", "1.8014398509481985e16", "0.30000000000000004", "1e22", "1e23",
        "123456789012345678901234567890", "0.000001", "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124", "8.41e21", "3.0e-10",
        "18446744073709551615e-5", "0.0000000000000000000000000000000000001e37",
        "2.4703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125e-324",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char json[4096];
        snprintf(json, sizeof json, "{\"v\":%s}", texts[i]);
        double want = strtod(texts[i], NULL);
        rtp_record *r = parse(json);
        const rtp_field *f = field(r, "v");
        double got = f->type == RTP_INT ? (double)f->v.i : f->v.d;
        cr_expect(same_double(got, want), "%s: %.17g, want %.17g", texts[i], got, want);
    }
}

/* Random decimal texts around the fast path's bounds (19 digits, 2^53,
 * 10^22) against strtod. */
Test(record, random_decimals_match_strtod)
{
    uint64_t x = 0x2545F4914F6CDD1Dull;
    char num[64], json[80];
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int ndig = 1 + (int)(x % 24), point = (int)(x >> 8) % (ndig + 1);
        int exp = (int)((x >> 16) % 61) - 30;
        char *p = num;
        uint64_t y = x;
        for (int k = 0; k < ndig; k++) {
            if (k == point && k > 0) *p++ = '.';
            y = y * 6364136223846793005ull + 1442695040888963407ull;
            *p++ = (char)('0' + (k == 0 ? 1 + (y >> 33) % 9 : (y >> 33) % 10));
        }
        sprintf(p, "e%d", exp);
        snprintf(json, sizeof json, "{\"v\":%s}", num);
        double want = strtod(num, NULL);
        double got = expect_double(parse(json), "v");
        cr_assert(same_double(got, want), "%s: %a, want %a", num, got, want);
    }
}

/* Decimal digits of 5^1075: 2^-1075, the halfway point between 0 and the
 * least denormal, is exactly that times 10^-1075. */
static size_t halfway_digits(char *out)
{
    unsigned char d[800] = {1}; /* little-endian decimal digits */
    size_t n = 1;
    for (int i = 0; i < 1075; i++) {
        unsigned carry = 0;
        for (size_t k = 0; k < n; k++) {
            unsigned v = d[k] * 5u + carry;
            d[k] = (unsigned char)(v % 10);
            carry = v / 10;
        }
        if (carry) d[n++] = (unsigned char)carry;
    }
    for (size_t k = 0; k < n; k++) out[k] = (char)('0' + d[n - 1 - k]);
    return n;
}

/* A tie decided only by a digit past the 780 that the conversion keeps. */
Test(record, long_numbers_keep_exact_rounding)
{
    char digits[800], json[1200];
    size_t n = halfway_digits(digits);
    cr_assert_gt(n, 700);
    snprintf(json, sizeof json, "{\"v\":%.*se-1075}", (int)n, digits);
    double d = expect_double(parse(json), "v");
    cr_expect(same_double(d, 0.0), "exact tie rounds to even: %a", d);
    snprintf(json, sizeof json, "{\"v\":%.*s%0100d1e-%d}", (int)n, digits, 0, 1075 + 101);
    d = expect_double(parse(json), "v");
    cr_expect(same_double(d, 0x1p-1074), "just above the tie: %a", d);
    cr_expect(same_double(d, strtod(json + 5, NULL)));
    snprintf(json, sizeof json, "{\"v\":0.%.*s%0100d1e-1074}", (int)n, digits, 0);
    d = expect_double(parse(json), "v");
    cr_expect(same_double(d, strtod(json + 5, NULL)), "%a", d);
}

Test(record, numbers_do_not_depend_on_the_locale)
{
    const char *names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "fr_FR", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got)
        cr_skip_test("no locale with a decimal comma is installed (make one: localedef -i de_DE "
                     "-f UTF-8 DIR/de_DE.UTF-8, then run with LOCPATH=DIR)");
    /* slow path (17+ digits) and writer */
    double d = expect_double(parse("{\"v\":0.12345678901234567890123}"), "v");
    cr_expect_eq(d, 0.12345678901234568);
    cr_expect_str_eq(double_text(0.1 + 0.2), "0.30000000000000004");
    setlocale(LC_NUMERIC, "C");
}

Test(record, strings_are_unescaped)
{
    rtp_record *r = parse("{\"s\":\"a\\n\\t\\\"\\\\\\/\\b\\f\\r\\u00e9\\u20ac\\ud83d\\ude00z\","
                          "\"nul\":\"x\\u0000y\",\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
    const char want[] = "a\n\t\"\\/\b\f\r\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
    expect_str(r, "s", want, sizeof want - 1);
    expect_str(r, "nul", "x\0y", 3);
    expect_str(r, "utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
}

/* Unicode table 3-7, at each boundary. */
Test(record, utf8_is_validated)
{
    static const struct {
        const char *bytes;
        bool valid;
    } cases[] = {
        {"\x7f", true},          {"\xc2\x80", true},          {"\xdf\xbf", true},
        {"\xc1\xbf", false},     {"\xc0\x80", false},         {"\xe0\xa0\x80", true},
        {"\xe0\x9f\xbf", false}, {"\xed\x9f\xbf", true},      {"\xed\xa0\x80", false},
        {"\xed\xbf\xbf", false}, {"\xee\x80\x80", true},      {"\xef\xbf\xbf", true},
        {"\xf0\x90\x80\x80", true}, {"\xf0\x8f\xbf\xbf", false}, {"\xf4\x8f\xbf\xbf", true},
        {"\xf4\x90\x80\x80", false}, {"\xf5\x80\x80\x80", false}, {"\xe2\x82", false},
        {"\xf0\x9f\x98", false}, {"\x80", false},             {"\xbf", false},
        {"\xe2\x82\xac\x80", false}, {"\xfe", false},         {"\xff", false},
        {"\xc2\x7f", false},     {"\xe2\xc2\xac", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[32];
        int n = snprintf(json, sizeof json, "{\"s\":\"%s\"}", cases[i].bytes);
        rtp_record *r = parse_flags(json, (size_t)n, 0, NULL);
        cr_expect_eq(r != NULL, cases[i].valid, "case %zu", i);
        cr_expect_eq(rtp_json_validate(json + 5, (size_t)n - 6, NULL) == 0, cases[i].valid,
                     "case %zu", i);
    }
}

Test(record, names_are_unescaped)
{
    rtp_record *r = parse("{\"a\\u0062\":1,\"q\\\"\":2}");
    cr_expect_eq(typed(r, "ab", RTP_INT)->v.i, 1);
    cr_expect_eq(typed(r, "q\"", RTP_INT)->v.i, 2);
}

Test(record, zero_copy_points_into_the_input)
{
    const char *s = "{\"plain\":\"abc\",\"esc\":\"a\\nb\",\"arr\":[1,2],\"o\":{\"x\":\"y\"}}";
    const char *end = s + strlen(s);
    rtp_record *r = parse_flags(s, strlen(s), RTP_JSON_ZERO_COPY, NULL);
    cr_assert_not_null(r);
    const rtp_field *plain = typed(r, "plain", RTP_STRING), *esc = typed(r, "esc", RTP_STRING);
    const rtp_field *arr = typed(r, "arr", RTP_STRING), *x = typed(r, "o.x", RTP_STRING);
    cr_expect(plain->v.s == s + 10, "plain string copied");
    cr_expect(arr->v.s > s && arr->v.s < end, "array text copied");
    cr_expect(x->v.s > s && x->v.s < end, "nested string copied");
    cr_expect(esc->v.s < s || esc->v.s >= end, "escaped string points into the input");
    expect_str(r, "esc", "a\nb", 3);

    r = parse(s);
    plain = typed(r, "plain", RTP_STRING);
    cr_expect(plain->v.s < s || plain->v.s >= end, "copied without RTP_JSON_ZERO_COPY");
    expect_str(r, "plain", "abc", 3);
}

Test(record, nested_objects_are_flattened)
{
    rtp_record *r = parse("{\"a\":{\"b\":{\"c\":1},\"d\":\"x\"},\"e\":{},\"f\":2,\"g\":{\"\":3}}");
    cr_assert_eq(r->nfields, 4);
    cr_expect_eq(typed(r, "a.b.c", RTP_INT)->v.i, 1);
    expect_str(r, "a.d", "x", 1);
    cr_expect_null(field(r, "e"), "an empty object has no field");
    cr_expect_eq(typed(r, "f", RTP_INT)->v.i, 2);
    cr_expect_eq(typed(r, "g.", RTP_INT)->v.i, 3);
    cr_expect_eq(r->fields[2].key, rtp_key_cstr("f"), "fields keep document order");
}

Test(record, nested_objects_as_text)
{
    const char *s = "{\"a\":{ \"b\" : [1, {\"c\":null}] },\"d\":1}";
    rtp_record *r = parse_flags(s, strlen(s), RTP_JSON_NESTED_AS_TEXT, NULL);
    cr_assert_not_null(r);
    cr_assert_eq(r->nfields, 2);
    const char want[] = "{ \"b\" : [1, {\"c\":null}] }";
    expect_str(r, "a", want, sizeof want - 1);
}

Test(record, arrays_are_kept_as_text)
{
    rtp_record *r = parse("{\"a\":[1, \"x\\n\", {\"k\":[true]}, []],\"e\":[]}");
    const char want[] = "[1, \"x\\n\", {\"k\":[true]}, []]";
    expect_str(r, "a", want, sizeof want - 1);
    expect_str(r, "e", "[]", 2);
}

Test(record, duplicate_names_last_wins)
{
    rtp_record *r = parse("{\"a\":1,\"b\":2,\"a\":\"x\"}");
    cr_assert_eq(r->nfields, 2);
    expect_str(r, "a", "x", 1);
    r = parse("{\"a.b\":1,\"a\":{\"b\":2.5}}");
    cr_assert_eq(r->nfields, 1);
    cr_expect_eq(expect_double(r, "a.b"), 2.5);
}

Test(record, duplicates_found_among_many_keys)
{
    /* more keys than the duplicate filter has bits */
    char name[32];
    for (int i = 0; i < 1100; i++) {
        snprintf(name, sizeof name, "pad%d", i);
        rtp_key_cstr(name);
    }
    char json[16384], *p = json;
    p += sprintf(p, "{");
    for (int i = 0; i < 1100; i++) p += sprintf(p, "\"k%d\":%d,", i, i);
    p += sprintf(p, "\"k7\":-7,\"k1099\":-1}");
    rtp_record *r = parse(json);
    cr_expect_eq(r->nfields, 1100);
    cr_expect_eq(typed(r, "k7", RTP_INT)->v.i, -7);
    cr_expect_eq(typed(r, "k1099", RTP_INT)->v.i, -1);
    cr_expect_eq(typed(r, "k1098", RTP_INT)->v.i, 1098);
}

Test(record, fields_already_in_the_record_are_replaced)
{
    rtp_record *r = rtp_batch_append(batch, 2);
    rtp_record_set_int(batch, r, rtp_key_cstr("x"), 1);
    const char *s = "{\"x\":5,\"y\":6}";
    cr_assert_eq(rtp_json_parse_record(batch, r, s, strlen(s), 0, NULL), 0);
    cr_expect_eq(r->nfields, 2);
    cr_expect_eq(typed(r, "x", RTP_INT)->v.i, 5);
}

Test(record, errors_say_what_and_where)
{
    static const struct {
        const char *json, *msg;
        size_t offset;
    } cases[] = {
        {"[1]", "not an object", 0},
        {"  ", "not an object", 2},
        {"", "not an object", 0},
        {"{} x", "trailing characters after the value", 3},
        {"\xef\xbb\xbf{}", "byte order mark (not allowed in JSON)", 0},
        {"{\"a\":1,}", "expected a string (member name)", 7},
        {"{\"a\" 1}", "expected ':'", 5},
        {"{\"a\":01}", "leading zero in number", 6},
        {"{\"a\":1.}", "digit expected after '.'", 7},
        {"{\"a\":tru}", "invalid literal", 5},
        {"{\"a\":\"\\x\"}", "invalid escape", 6},
        {"{\"a\":\"\\ud800\"}", "lone surrogate in \\u escape", 6},
        {"{\"a\":\"\xff\"}", "invalid UTF-8", 6},
        {"{\"a\":\"\x01\"}", "control character in string", 6},
        {"{\"a\":\"abc", "unterminated string", 9},
        {"{\"a\":1", "unexpected end of input", 6},
        {"{\"a\":+1}", "unexpected character", 5},
        {"{\"a\":[1,]}", "unexpected character", 8},
        {"{\"a\":1e400}", "number out of range", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rtp_json_error e = {0};
        cr_expect_null(parse_flags(cases[i].json, strlen(cases[i].json), 0, &e), "%s",
                       cases[i].json);
        cr_expect_str_eq(e.msg ? e.msg : "(none)", cases[i].msg, "%s", cases[i].json);
        cr_expect_eq(e.offset, cases[i].offset, "%s: offset %zu", cases[i].json, e.offset);
    }
}

Test(record, err_may_be_null)
{
    rtp_record *r = rtp_batch_append(batch, 1);
    cr_expect_eq(rtp_json_parse_record(batch, r, "[", 1, 0, NULL), -1);
    cr_expect_eq(rtp_json_validate("[", 1, NULL), -1);
    cr_expect_eq(rtp_json_validate(NULL, 0, NULL), -1);
}

/* ---- writer ---------------------------------------------------------------- */

TestSuite(writer, .init = setup, .fini = teardown);

static char *write_string(const char *s, size_t len, size_t *out_len)
{
    rtp_sbuf sb = {0};
    rtp_json_write_string(&sb, s, len);
    rtp_sbuf_append(&sb, "", 1);
    *out_len = sb.len - 1;
    return sb.data;
}

Test(writer, control_characters_quotes_and_backslashes_are_escaped)
{
    char raw[40];
    for (int i = 0; i < 32; i++) raw[i] = (char)i;
    memcpy(raw + 32, "\"\\/\x7f", 4);
    size_t n;
    char *json = write_string(raw, 36, &n);
    cr_expect_str_eq(json, "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n"
                           "\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
                           "\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e"
                           "\\u001f\\\"\\\\/\x7f\"");
    free(json);
}

Test(writer, invalid_utf8_becomes_replacement_characters)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff" "b", "\"a\xef\xbf\xbd" "b\""},
        {"\xe2\x82", "\"\xef\xbf\xbd\""},                  /* truncated: one U+FFFD */
        {"\xe2\x82" "x", "\"\xef\xbf\xbdx\""},
        {"\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\""},      /* overlong */
        {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
        {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9", "\"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n;
        char *json = write_string(cases[i].in, strlen(cases[i].in), &n);
        cr_expect_str_eq(json, cases[i].out, "case %zu", i);
        cr_expect_eq(rtp_json_validate(json, n, NULL), 0);
        free(json);
    }
}

Test(writer, any_bytes_give_valid_json_that_reads_back)
{
    uint64_t x = 88172645463325252ull;
    char raw[64];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(round % 64);
        bool ascii = round % 2 == 0;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            raw[i] = (char)(ascii ? x % 128 : x >> 8);
        }
        size_t n;
        char *json = write_string(raw, len, &n);
        rtp_json_error e;
        cr_assert_eq(rtp_json_validate(json, n, &e), 0, "round %d: %s at %zu", round, e.msg,
                     e.offset);
        if (ascii) {
            char obj[512];
            int m = snprintf(obj, sizeof obj, "{\"s\":%s}", json);
            rtp_record *r = parse_flags(obj, (size_t)m, 0, NULL);
            cr_assert_not_null(r);
            expect_str(r, "s", raw, len);
        }
        free(json);
    }
}

Test(writer, doubles_print_short_and_stay_doubles)
{
    static const struct {
        double d;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},       {189.25, "189.25"},   {3.0, "3.0"},     {-0.0, "-0.0"},
        {0.0, "0.0"},       {1e300, "1e+300"},    {-2.5, "-2.5"},   {0.0001, "0.0001"},
        {1e-5, "1e-05"},    {1e15, "1e+15"},      {123456.0, "123456.0"},
        {0.1 + 0.2, "0.30000000000000004"},       {1.0 / 3, "0.3333333333333333"},
        {5e-324, "4.94065645841247e-324"},        {1e21, "1e+21"},
        {9007199254740993.0, "9007199254740992.0"},
        {NAN, "null"},      {INFINITY, "null"},   {-INFINITY, "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_str_eq(double_text(cases[i].d), cases[i].text, "%.17g", cases[i].d);
}

static void expect_round_trip(double d)
{
    const char *text = double_text(d);
    double back = strtod(text, NULL);
    cr_assert(same_double(back, d), "%a wrote %s, reads back as %a", d, text, back);
    cr_assert(strpbrk(text, ".e"), "%s would read back as an integer", text);
}

Test(writer, doubles_round_trip_exactly)
{
    const double fixed[] = {0.1, 1e300, 5e-324, -0.0, 189.25, DBL_MAX, -DBL_MAX, DBL_MIN,
                            DBL_EPSILON, 2.2250738585072009e-308, 1e23, 0.3, 2.0 / 3};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) expect_round_trip(fixed[i]);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (isfinite(d)) expect_round_trip(d);
        /* prices: a few decimals, where the fast path works */
        expect_round_trip((double)(x % 100000000) / 100.0);
        expect_round_trip((double)(x % 1000000) / 10000.0 * 3.7);
    }
}

Test(writer, record_with_every_type)
{
    rtp_record *r = rtp_batch_append(batch, 8);
    rtp_record_set_null(batch, r, rtp_key_cstr("n"));
    rtp_record_set_bool(batch, r, rtp_key_cstr("b"), true);
    rtp_record_set_int(batch, r, rtp_key_cstr("i"), INT64_MIN);
    rtp_record_set_double(batch, r, rtp_key_cstr("d"), 2.0);
    rtp_record_set_double(batch, r, rtp_key_cstr("nan"), NAN);
    rtp_record_set_str(batch, r, rtp_key_cstr("s"), "q\"\n", 3);
    rtp_record_set_time(batch, r, rtp_key_cstr("t"), 1675209900000000000);
    size_t n;
    char *json = write_record(r, NULL, &n);
    cr_expect_str_eq(json, "{\"n\":null,\"b\":true,\"i\":-9223372036854775808,\"d\":2.0,"
                           "\"nan\":null,\"s\":\"q\\\"\\n\",\"t\":\"2023-02-01T00:05:00.000Z\"}");
    free(json);
}

Test(writer, time_and_tag_keys)
{
    rtp_record *r = rtp_batch_append(batch, 2);
    r->time = 1675209900123000000;
    rtp_record_set_int(batch, r, rtp_key_cstr("time"), 7);
    rtp_record_set_int(batch, r, rtp_key_cstr("v"), 1);
    rtp_json_write_opts opts = {.time_key = "time", .tag_key = "tag", .tag = "stocks"};
    size_t n;
    char *json = write_record(r, &opts, &n);
    cr_expect_str_eq(json, "{\"time\":\"2023-02-01T00:05:00.123Z\",\"tag\":\"stocks\",\"v\":1}");
    free(json);
    r->time = 0;
    opts.tag = NULL;
    json = write_record(r, &opts, &n);
    cr_expect_str_eq(json, "{\"time\":null,\"tag\":null,\"v\":1}");
    free(json);
    rtp_record *empty = rtp_batch_append(batch, 1);
    json = write_record(empty, NULL, &n);
    cr_expect_str_eq(json, "{}");
    free(json);
}

Test(writer, names_are_escaped)
{
    rtp_record *r = rtp_batch_append(batch, 1);
    rtp_record_set_int(batch, r, rtp_key_intern("a\"\xff\n", 4), 1);
    size_t n;
    char *json = write_record(r, NULL, &n);
    cr_expect_str_eq(json, "{\"a\\\"\xef\xbf\xbd\\n\":1}");
    free(json);
}

/* write -> parse gives back the same fields, types and values */
Test(writer, records_round_trip_through_the_parser)
{
    const char *src = "{\"symbol\":\"AAPL\",\"ts\":1700000000123,\"price\":189.25,\"whole\":3.0,"
                      "\"tiny\":5e-324,\"big\":1e300,\"neg\":-0.0,\"t\":true,\"z\":null,"
                      "\"s\":\"tab\\there \\u00e9 \\ud834\\udd1e \\u0000\",\"arr\":[1,2],"
                      "\"o\":{\"p\":{\"q\":0.1}},\"imin\":-9223372036854775808}";
    rtp_record *a = parse(src);
    size_t n;
    char *json = write_record(a, NULL, &n);
    rtp_record *b = parse_flags(json, n, 0, NULL);
    cr_assert_not_null(b, "%s", json);
    cr_assert_eq(a->nfields, b->nfields, "%s", json);
    for (uint32_t i = 0; i < a->nfields; i++) {
        const rtp_field *x = &a->fields[i], *y = &b->fields[i];
        cr_expect_eq(x->key, y->key);
        cr_expect_eq(x->type, y->type, "%s: field %u type", json, i);
        if (x->type == RTP_STRING)
            cr_expect(x->len == y->len && memcmp(x->v.s, y->v.s, x->len) == 0, "field %u", i);
        else if (x->type == RTP_DOUBLE)
            cr_expect(same_double(x->v.d, y->v.d), "field %u: %a vs %a", i, x->v.d, y->v.d);
        else
            cr_expect_eq(x->v.i, y->v.i, "field %u", i);
    }
    free(json);
}

Test(writer, sbuf_grows_geometrically)
{
    rtp_sbuf sb = {0};
    size_t reallocs = 0;
    char *last = NULL;
    for (int i = 0; i < 100000; i++) {
        rtp_sbuf_append(&sb, "0123456789", 10);
        if (sb.data != last) reallocs++, last = sb.data;
    }
    cr_expect_eq(sb.len, 1000000);
    cr_expect_leq(sb.cap, 2 * sb.len);
    cr_expect_leq(reallocs, 20, "%zu reallocations", reallocs);
    cr_expect_eq(memcmp(sb.data + 999990, "0123456789", 10), 0);
    rtp_sbuf_reserve(&sb, 0);
    rtp_sbuf_free(&sb);
    cr_expect_null(sb.data);
    cr_expect_eq(sb.len, 0);
    rtp_sbuf_append(&sb, NULL, 0);
    cr_expect_eq(sb.len, 0);
}
