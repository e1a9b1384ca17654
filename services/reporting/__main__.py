from shared.serve import serve

serve("reporting")
