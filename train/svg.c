/* svg.c: a hand-written SVG line chart of a training run — loss and validation metric per iteration, one panel each. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "train/trainer.h"

#define WIDTH 760
#define PANEL_H 220
#define MARGIN_L 80
#define MARGIN_R 30
#define MARGIN_T 50
#define GAP 60

/* Writes s with the five XML special characters escaped. */
static void xml_text(FILE *fp, const char *s)
{
    for (; *s != '\0'; ++s) {
        switch (*s) {
        case '&':
            fputs("&amp;", fp);
            break;
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        case '\'':
            fputs("&apos;", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}

/* One panel at vertical offset top: frame, axis labels, min/max ticks and the polyline (or a note when there is no data). */
static void panel(FILE *fp, int top, const char *label, const char *colour, const uint32_t *iters, const double *vals, size_t n,
                  uint32_t max_iter, const char *x_label, const char *empty_note)
{
    int x0 = MARGIN_L, x1 = WIDTH - MARGIN_R, y0 = top, y1 = top + PANEL_H;
    fprintf(fp, "  <g class=\"panel\">\n");
    fprintf(fp, "    <rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", x0, y0, x1 - x0,
            y1 - y0);
    fprintf(fp, "    <text x=\"%d\" y=\"%d\" font-size=\"14\" fill=\"%s\">", x0, y0 - 8, colour);
    xml_text(fp, label);
    fprintf(fp, "</text>\n");
    if (n == 0) {
        fprintf(fp, "    <text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#666\" text-anchor=\"middle\">", (x0 + x1) / 2,
                (y0 + y1) / 2);
        xml_text(fp, empty_note);
        fprintf(fp, "</text>\n  </g>\n");
        return;
    }
    double lo = vals[0], hi = vals[0];
    for (size_t i = 1; i != n; ++i) {
        lo = vals[i] < lo ? vals[i] : lo;
        hi = vals[i] > hi ? vals[i] : hi;
    }
    if (hi - lo < 1e-12 * (fabs(hi) + 1)) {
        lo -= 0.5 * (fabs(lo) + 1e-3);
        hi += 0.5 * (fabs(hi) + 1e-3);
    }
    double pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    uint32_t it_lo = 1, it_hi = max_iter > 1 ? max_iter : 2;
    /* ticks: the value range and the iteration range, four grid lines */
    for (int t = 0; t <= 4; ++t) {
        double v = lo + (hi - lo) * t / 4;
        double y = y1 - (double)(y1 - y0) * t / 4;
        fprintf(fp, "    <line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, y, x1, y);
        fprintf(fp, "    <text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.4g</text>\n", x0 - 6, y + 4, v);
    }
    fprintf(fp, "    <text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%u</text>\n", x0, y1 + 16, it_lo);
    fprintf(fp, "    <text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%u</text>\n", x1, y1 + 16, it_hi);
    fprintf(fp, "    <text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n", (x0 + x1) / 2, y1 + 16, x_label);
    fprintf(fp, "    <polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
    for (size_t i = 0; i != n; ++i) {
        double x = x0 + (double)(x1 - x0) * ((double)iters[i] - it_lo) / (double)(it_hi - it_lo);
        double y = y1 - (double)(y1 - y0) * (vals[i] - lo) / (hi - lo);
        fprintf(fp, "%s%.1f,%.1f", i != 0 ? " " : "", x, y);
    }
    fprintf(fp, "\"/>\n  </g>\n");
}

int recd_chart_write_svg(const recd_curve_t *c, const char *title, const char *metric_label, const char *path)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return RECD_EIO;
    uint32_t max_iter = 1;
    for (size_t i = 0; i != c->n_loss; ++i)
        max_iter = c->loss_iter[i] > max_iter ? c->loss_iter[i] : max_iter;
    for (size_t i = 0; i != c->n_metric; ++i)
        max_iter = c->metric_iter[i] > max_iter ? c->metric_iter[i] : max_iter;
    int height = MARGIN_T + 2 * PANEL_H + GAP + 40;
    fprintf(fp,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\">\n"
            "  <rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "  <text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">",
            WIDTH, height, WIDTH, height, MARGIN_L);
    xml_text(fp, title);
    fprintf(fp, "</text>\n");
    char label[128];
    const char *x_label = c->algorithm != NULL ? c->algorithm->iteration_name : "iteration";
    panel(fp, MARGIN_T, "training loss", "#1f77b4", c->loss_iter, c->loss, c->n_loss, max_iter, x_label,
          "the trainer reported no loss");
    snprintf(label, sizeof(label), "%s per %s", metric_label, x_label);
    panel(fp, MARGIN_T + PANEL_H + GAP, label, "#d62728", c->metric_iter, c->metric, c->n_metric, max_iter, x_label,
          "no per-iteration snapshots from this trainer: validation metric not charted");
    fprintf(fp, "</svg>\n");
    int bad = ferror(fp);
    return fclose(fp) != 0 || bad ? RECD_EIO : RECD_OK;
}
