#include "fs/mountinfo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Undoes mountinfo's octal escapes (\040 for a space, \012 for a newline) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

int mountinfo_parse(char *line, struct mountinfo_line *out)
{
	char *fields[5] = {NULL}, *save = NULL, *tok, *end;
	int i = 0;

	out->fstype = NULL;
	for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (i < 5)
			fields[i] = tok;
		if (i >= 6 && strcmp(tok, "-") == 0) {
			out->fstype = strtok_r(NULL, " \n", &save);
			break;
		}
		i++;
	}
	if (!fields[4] || !out->fstype)
		return -EINVAL;
	out->id = strtoull(fields[0], &end, 10);
	if (end == fields[0] || *end)
		return -EINVAL;
	unescape(fields[4]);
	out->point = fields[4];
	return 0;
}
