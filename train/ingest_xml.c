/* ingest_xml.c: XML reader — a streaming splitter cuts out each child element of the root, libxml2 parses each one alone. */
/*
 * Why not xmlTextReader alone: libxml2 cannot resume after a well-formedness error and parses ahead of the records it
 * hands out, so one broken record would lose it, the records before it in the same chunk and everything after. Cutting
 * the stream into records first (tags, quotes, comments, CDATA and processing instructions are respected) keeps memory
 * bounded by one record and lets a malformed record be counted and skipped like a bad CSV line. Each record is parsed
 * wrapped in the document's own XML declaration and root start tag, so encodings and namespace declarations still apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include "train/ingest_internal.h"
#include "base/alloc.h"

#define MAX_FIELDS 64
#define MAX_PROLOG (64u * 1024)

typedef struct st_xbuf_t {
    char *p;
    size_t n, cap, limit;
    int too_long;
} xbuf_t;

typedef struct st_xml_kv_t {
    const xmlChar *name;
    xmlChar *value; /* owned (xmlFree) */
} xml_kv_t;

static void put(xbuf_t *b, int c)
{
    if (b == NULL)
        return;
    if (b->n + 1 >= b->limit) {
        b->too_long = 1;
        return;
    }
    if (b->n + 2 > b->cap) {
        b->cap = b->cap == 0 ? 1024 : b->cap * 2;
        b->p = recd_xrealloc(b->p, b->cap);
    }
    b->p[b->n++] = (char)c;
    b->p[b->n] = '\0';
}

static void put_str(xbuf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        put(b, (unsigned char)s[i]);
}

/* Copies bytes through the terminator term (inclusive). Returns 0, or -1 at the end of input. */
static int copy_until(ingest_reader_t *r, xbuf_t *b, const char *term)
{
    size_t tl = strlen(term), seen = 0;
    char last[4] = {0, 0, 0, 0};
    int c;
    while ((c = ingest_reader_getc(r)) >= 0) {
        put(b, c);
        memmove(last, last + 1, 3);
        last[3] = (char)c;
        if (++seen >= tl && memcmp(last + 4 - tl, term, tl) == 0)
            return 0;
    }
    return -1;
}

/* Copies the rest of a tag through its '>', honouring quoted attribute values. *empty is set for "/>". */
static int copy_tag(ingest_reader_t *r, xbuf_t *b, int *empty)
{
    int c, quote = 0, prev = 0;
    while ((c = ingest_reader_getc(r)) >= 0) {
        put(b, c);
        if (quote) {
            if (c == quote)
                quote = 0;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '>') {
            *empty = prev == '/';
            return 0;
        }
        prev = c;
    }
    return -1;
}

/*
 * After a '<' (already in b): copies one markup construct. Returns +1 for a start tag, -1 for an end tag, 0 for anything
 * that does not nest (empty element, comment, CDATA, processing instruction, declaration), -2 at the end of input.
 */
static int copy_markup(ingest_reader_t *r, xbuf_t *b)
{
    int c = ingest_reader_getc(r), empty = 0;
    if (c < 0)
        return -2;
    put(b, c);
    switch (c) {
    case '?':
        return copy_until(r, b, "?>") < 0 ? -2 : 0;
    case '/':
        return copy_tag(r, b, &empty) < 0 ? -2 : -1;
    case '!': {
        int c1 = ingest_reader_getc(r), c2;
        if (c1 < 0)
            return -2;
        put(b, c1);
        if (c1 == '-') {
            if ((c2 = ingest_reader_getc(r)) < 0)
                return -2;
            put(b, c2);
            return copy_until(r, b, "-->") < 0 ? -2 : 0;
        }
        if (c1 == '[')
            return copy_until(r, b, "]]>") < 0 ? -2 : 0;
        return copy_tag(r, b, &empty) < 0 ? -2 : 0;
    }
    default:
        if (copy_tag(r, b, &empty) < 0)
            return -2;
        return empty ? 0 : 1;
    }
}

static const xml_kv_t *find(const xml_kv_t *kv, size_t n, const recd_ingest_options_t *o, int column)
{
    const char *opt = ingest_col_option(o, column);
    if (opt != NULL && *opt != '\0') {
        for (size_t i = 0; i < n; i++)
            if (strcmp((const char *)kv[i].name, opt) == 0)
                return &kv[i];
        for (size_t i = 0; i < n; i++)
            if (strcasecmp((const char *)kv[i].name, opt) == 0)
                return &kv[i];
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (ingest_default_alias(column, (const char *)kv[i].name, strlen((const char *)kv[i].name)))
            return &kv[i];
    return NULL;
}

static void set_field(ingest_field_t *f, const xml_kv_t *kv)
{
    if (kv != NULL) {
        f->p = (const char *)kv->value;
        f->len = strlen(f->p);
    }
}

/* Turns a parsed record element into fields: its attributes, then its child elements' text. */
static void element_record(ingest_ctx_t *ctx, xmlNodePtr node, uint64_t line)
{
    xml_kv_t kv[MAX_FIELDS];
    size_t n = 0;
    char text[160];
    size_t tlen;

    for (xmlAttrPtr a = node->properties; a != NULL && n < MAX_FIELDS; a = a->next) {
        xmlChar *v = xmlNodeListGetString(node->doc, a->children, 1);
        kv[n].name = a->name;
        kv[n++].value = v != NULL ? v : xmlStrdup((const xmlChar *)"");
    }
    for (xmlNodePtr c = node->children; c != NULL && n < MAX_FIELDS; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        xmlChar *v = xmlNodeGetContent(c);
        kv[n].name = c->name;
        kv[n++].value = v != NULL ? v : xmlStrdup((const xmlChar *)"");
    }
    /* the sample text: <name key="value" ...> rebuilt from the fields */
    int w = snprintf(text, sizeof(text), "<%s", (const char *)node->name);
    tlen = w > 0 ? ((size_t)w < sizeof(text) ? (size_t)w : sizeof(text) - 1) : 0;
    for (size_t i = 0; i < n && tlen + 1 < sizeof(text); i++) {
        w = snprintf(text + tlen, sizeof(text) - tlen, " %s=\"%s\"", (const char *)kv[i].name, (const char *)kv[i].value);
        tlen = w > 0 && tlen + (size_t)w < sizeof(text) ? tlen + (size_t)w : sizeof(text) - 1;
    }
    if (tlen + 1 < sizeof(text))
        text[tlen++] = '>';

    ingest_fields_t f;
    memset(&f, 0, sizeof(f));
    set_field(&f.user, find(kv, n, ctx->o, 0));
    set_field(&f.item, find(kv, n, ctx->o, 1));
    set_field(&f.value, find(kv, n, ctx->o, 2));
    set_field(&f.ts, find(kv, n, ctx->o, 3));
    ingest_record(ctx, line, text, tlen, &f);
    for (size_t i = 0; i < n; i++)
        xmlFree(kv[i].value);
}

/* Parses one record wrapped as <?xml ...?><root ...>record</root>; a failure is a malformed record. */
static void parse_record(ingest_ctx_t *ctx, xmlParserCtxtPtr parser, xbuf_t *doc, size_t record_at, const char *root_name,
                         uint64_t line)
{
    const char *record = doc->p + record_at;
    size_t record_len = doc->n - record_at;
    if (doc->too_long) {
        ingest_reject(ctx, line, RECD_REJECT_MALFORMED, record, record_len);
        return;
    }
    size_t end = doc->n;
    put_str(doc, "</", 2);
    put_str(doc, root_name, strlen(root_name));
    put(doc, '>');
    xmlDocPtr d = xmlCtxtReadMemory(parser, doc->p, (int)doc->n, NULL, NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    xmlNodePtr root = d != NULL ? xmlDocGetRootElement(d) : NULL, node = NULL;
    for (xmlNodePtr c = root != NULL ? root->children : NULL; c != NULL && node == NULL; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            node = c;
    if (node == NULL || doc->too_long) {
        doc->n = end;
        ingest_reject(ctx, line, RECD_REJECT_MALFORMED, doc->p + record_at, end - record_at);
    } else {
        element_record(ctx, node, line);
    }
    xmlFreeDoc(d);
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ingest_xml(ingest_ctx_t *ctx)
{
    ingest_reader_t *r = ctx->r;
    const char *name = ctx->name != NULL ? ctx->name : "input";
    xbuf_t prolog = {.limit = MAX_PROLOG}, doc = {.limit = MAX_PROLOG + INGEST_MAX_RECORD};
    char root_name[256];
    int ret = RECD_OK, c, kind;
    xmlParserCtxtPtr parser = xmlNewParserCtxt(); /* reused for every record */

    if (parser == NULL) {
        fprintf(stderr, "recd ingest: out of memory (XML parser)\n");
        abort();
    }

    /* the prolog: an optional XML declaration, comments and processing instructions, then the root start tag */
    for (;;) {
        while ((c = ingest_reader_getc(r)) >= 0 && is_space(c))
            ;
        if (c < 0) {
            if (!r->error) {
                ingest_error(ctx, "%s: no XML root element", name);
                ret = RECD_EFORMAT;
            }
            goto Exit;
        }
        if (c != '<') {
            ingest_error(ctx, "%s: not XML (text before the root element at line %llu)", name, (unsigned long long)r->line_no + 1);
            ret = RECD_EFORMAT;
            goto Exit;
        }
        size_t start = prolog.n;
        put(&prolog, '<');
        kind = copy_markup(r, &prolog);
        if (kind == -1) {
            ingest_error(ctx, "%s: an end tag before the XML root element", name);
            ret = RECD_EFORMAT;
            goto Exit;
        }
        if (kind == -2 || prolog.too_long) {
            ingest_error(ctx, "%s: the XML prolog is %s", name, prolog.too_long ? "too long" : "cut short");
            ret = RECD_EFORMAT;
            goto Exit;
        }
        if (prolog.n - start > 2 && prolog.p[start + 1] == '!' && prolog.p[start + 2] != '-') {
            ingest_error(ctx, "%s: XML with a DOCTYPE is not accepted (entities are not expanded)", name);
            ret = RECD_EFORMAT;
            goto Exit;
        }
        if (prolog.p[start + 1] == '?' && strncmp(prolog.p + start, "<?xml", 5) == 0 && start == 0 && is_space(prolog.p[5])) {
            continue; /* keep the declaration: it is repeated before every record */
        }
        if (kind == 1 || (kind == 0 && prolog.p[start + 1] != '?' && prolog.p[start + 1] != '!')) {
            /* the root element; an empty root (<r/>) has no records */
            size_t i = start + 1, k = 0;
            while (i < prolog.n && !is_space(prolog.p[i]) && prolog.p[i] != '>' && prolog.p[i] != '/' && k + 1 < sizeof(root_name))
                root_name[k++] = prolog.p[i++];
            root_name[k] = '\0';
            if (kind == 0)
                goto Exit;
            break;
        }
        prolog.n = start; /* a comment or processing instruction: dropped */
        if (prolog.p != NULL)
            prolog.p[prolog.n] = '\0';
    }

    /* the records: each child element of the root */
    put_str(&doc, prolog.p, prolog.n);
    size_t record_at = doc.n;
    for (;;) {
        while ((c = ingest_reader_getc(r)) >= 0 && c != '<')
            ; /* text directly inside the root is not a record */
        if (c < 0)
            break;
        uint64_t line = r->line_no + 1;
        doc.n = record_at;
        doc.too_long = 0;
        put(&doc, '<');
        kind = copy_markup(r, &doc);
        if (kind == -1)
            break; /* the root's end tag */
        if (kind == -2) {
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, doc.p + record_at, doc.n - record_at);
            break;
        }
        char second = doc.p[record_at + 1];
        if (second == '?' || second == '!')
            continue; /* comment, CDATA, processing instruction between records */
        int depth = kind;
        while (depth > 0) {
            while ((c = ingest_reader_getc(r)) >= 0 && c != '<')
                put(&doc, c);
            if (c < 0)
                break;
            put(&doc, '<');
            kind = copy_markup(r, &doc);
            if (kind == -2)
                break;
            depth += kind;
        }
        if (depth > 0) { /* the input ended inside the record */
            ingest_reject(ctx, line, RECD_REJECT_MALFORMED, doc.p + record_at, doc.n - record_at);
            break;
        }
        parse_record(ctx, parser, &doc, record_at, root_name, line);
    }
Exit:
    xmlFreeParserCtxt(parser);
    free(prolog.p);
    free(doc.p);
    return ret;
}
