# -*- coding: utf-8 -*-
# A comment with 'quotes', "doubles" and a } brace
topics = {'plain': 'a simple string\n',
          "double": "it's \"quoted\"\t\\ and a tab",
  'concat': 'one '   "two "
            'three\n'  # a comment between the pieces
            '''four''' u'five' U"six",
  'triple': '''line one
line two with 'single' and "double" quotes, \''' inside
  indented'''  ,
  'crlf': '''first
second''',
  'raw': r'C:\path\new \' kept',
  'rawtriple': R'''raw "triple" \n stays''',
  'escapes': '\a\b\f\v\r\101\0\7 \x41\xe9 \u2014 \U0001F600 \q \d',
  'continued': 'abc\
def',
  'utf8': 'café — naïve',
  'empty': '',
  'plain': 'a duplicate key: first place, last value',
  'trailing': 'comma'  ,  }

