"""Chat lines for simulated streams: benign and abusive, English and Russian."""

BENIGN: tuple[tuple[str, str], ...] = (
    ("en", "hello everyone, great stream today!"),
    ("en", "what game is this?"),
    ("en", "lol that was a nice play"),
    ("en", "greetings from Berlin"),
    ("en", "can you play the next level please"),
    ("en", "gg well played"),
    ("ru", "привет всем, отличный стрим"),
    ("ru", "какая это игра?"),
    ("ru", "спасибо за стрим, до завтра"),
    ("ru", "классно играешь"),
)

ABUSIVE: tuple[tuple[str, str], ...] = (
    ("en", "you are a stupid idiot"),
    ("en", "shut up you dumb bitch"),
    ("en", "this streamer is a fucking moron"),
    ("en", "go kill yourself loser"),
    ("ru", "ты тупой идиот"),
    ("ru", "заткнись, дебил"),
    ("ru", "стример дебил и урод"),
)
