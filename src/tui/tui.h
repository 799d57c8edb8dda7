/* The interactive workbench: `lathe [MODEL]`.
 *
 * A full-screen ncurses program: the layer table, plots of the selected
 * layer (histogram, sparsity heatmap, singular-value spectrum; staged over
 * committed), a status line with committed -> staged accuracy and size,
 * and a REPL pane running the same Lua state and API as `lathe lua`.
 * Long work (previews, spectra) runs on a worker thread. */
#ifndef LT_TUI_H
#define LT_TUI_H

typedef struct lt_tui_opts {
	const char *model_path;  /* the model to open */
	const char *data_dir;    /* --data, or NULL for the usual search */
} lt_tui_opts;

/* Run the workbench until the user quits. Returns the process exit
 * status: 0, 1 after an error (printed on stderr once the screen is
 * restored), 2 when there is no usable terminal (the message points to
 * `lathe run` and `lathe lua`). */
int lt_tui_run(const lt_tui_opts *opts);

#endif
