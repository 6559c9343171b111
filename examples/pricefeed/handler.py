from podfleet import serve

serve()
