def render_console(report, color, width=100): return ""
