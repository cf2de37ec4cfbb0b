/* commands.h — the subcommands of the roe executable. Each returns the process exit code:
 * 0 success, 1 runtime failure (bad file, I/O), 2 bad command line. */
#ifndef ROE_COMMANDS_H
#define ROE_COMMANDS_H

int roe_cmd_generate(int argc, char **argv);
int roe_cmd_inspect(int argc, char **argv);
int roe_cmd_bench(int argc, char **argv);
int roe_cmd_eval(int argc, char **argv);
int roe_cmd_tune(int argc, char **argv);
int roe_cmd_serve(int argc, char **argv);
int roe_cmd_env(int argc, char **argv);
int roe_cmd_quantize(int argc, char **argv);
int roe_cmd_tokenize(int argc, char **argv);

#endif
