// SPDX-License-Identifier: GPL-2.0
/* Common code: nothing of its own here. */
