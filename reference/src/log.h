/* log: one mw_log(level, ...) for every module. The core writes to a sink
 * that the edge points at lwsl_* (default: stderr). */
#ifndef MW_LOG_H
#define MW_LOG_H

enum mw_log_level { MW_LOG_ERR = 0, MW_LOG_WARN, MW_LOG_NOTICE, MW_LOG_INFO, MW_LOG_DEBUG };

typedef void (*mw_log_sink)(enum mw_log_level level, const char *line, void *ud);

/* Sets the sink (NULL: stderr) and the most verbose level that is emitted.
 * Called once at start-up. */
void mw_log_setup(mw_log_sink sink, void *ud, enum mw_log_level max_level);

void mw_log(enum mw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* MW_LOG_H */
