"""Logging screens for units (记录活动, 考勤, 提交报告, 群众需求): plain HTML and a script of
ours that post to the same public endpoints outside systems use, so there is one validation
path; errors come back in Chinese (`Accept-Language: zh-CN`) and are shown beside their fields."""
