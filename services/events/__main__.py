from shared.serve import serve

serve("events")
