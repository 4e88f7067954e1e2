#include <srt/srt.h>
#include <srt/access_control.h>
